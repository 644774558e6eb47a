"""Installing the unit: checks that the service will be able to start, then one file written.

Everything a unit needs is checked before anything is written, each failure one line naming the
fix: a system unit needs root, and its dedicated user must be able to read the sequence file and
the installed agent (Raspberry Pi OS bookworm makes home folders private, so a checkout in
/home/pi cannot be run by another user).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ObsAgentError
from agent.service.unit import UnitSettings, render_unit, unit_path


class InstallError(ObsAgentError):
    """The unit cannot be installed as asked; the message names the fix."""


@dataclass(frozen=True)
class Installed:
    """What `install_unit` did, for the command to tell the user."""

    path: Path
    replaced: bool
    created_user: bool


def _blocked_for(path: Path, user: str) -> Path | None:
    """The first folder or file on `path` that `user` cannot pass or read, or None.

    Judged from the permission bits for the user's uid and groups; a user that does not exist yet
    gets only what others get (it will be created with a group of its own)."""
    try:
        entry = pwd.getpwnam(user)
        uid, groups = entry.pw_uid, set(os.getgrouplist(user, entry.pw_gid))
    except KeyError:
        uid, groups = -1, set()
    parts = [path, *path.parents][::-1]
    for index, part in enumerate(parts):
        st = part.stat()
        last = index == len(parts) - 1
        need = (stat.S_IROTH if last and not stat.S_ISDIR(st.st_mode) else stat.S_IXOTH)
        if uid == 0:
            continue
        if st.st_uid == uid:
            shift = 6
        elif st.st_gid in groups:
            shift = 3
        else:
            shift = 0
        if not st.st_mode & (need << shift):
            return part
    return None


def check_readable_by(user: str, sequence: Path, python: Path, package: Path) -> None:
    """The system unit's user can read the sequence file and run the installed agent."""
    for what, path in (("the sequence file", sequence), ("the agent's Python", python), ("the agent's code", package)):
        blocked = _blocked_for(path, user)
        if blocked is not None:
            fix = (
                f"copy it to /etc/obsagent/ (sudo install -D -m 644 {sequence} /etc/obsagent/{sequence.name})"
                if what == "the sequence file"
                else "install obsagent under /opt (docs/raspberry-pi.md) or use --user"
            )
            raise InstallError(f"user {user} cannot read {what} ({path}): {blocked} is closed to it; {fix}")


def create_service_user(user: str) -> bool:
    """Create the system user the unit runs as, if missing; returns whether it was created."""
    try:
        pwd.getpwnam(user)
        return False
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise InstallError(f"user {user} does not exist and useradd is missing; create the user by hand")
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--home-dir", f"/var/lib/{user}", "--no-create-home",
         "--shell", "/usr/sbin/nologin", "--comment", "obsagent observatory agent", user],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise InstallError(f"could not create user {user}: {result.stderr.strip() or result.returncode}")
    grp.getgrnam(user)  # the group came with it (--user-group)
    return True


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install_unit(settings: UnitSettings, *, package: Path) -> Installed:
    """Check, create the service user (system scope), write the unit; nothing else is touched."""
    path = unit_path(settings.scope)
    if settings.scope == "system":
        if os.geteuid() != 0:
            raise InstallError(
                "installing a system unit needs root: run it with sudo (sudo $(which obsagent) service install ...) "
                "or add --user"
            )
        check_readable_by(settings.user, settings.sequence, settings.python, package)
    text = render_unit(settings)
    replaced = path.exists()
    created = create_service_user(settings.user) if settings.scope == "system" else False
    write_atomic(path, text)
    return Installed(path=path, replaced=replaced, created_user=created)
