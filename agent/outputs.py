"""Where obsagent may write, and with what permissions.

An output option naming a folder where a file is written (or a file where a folder is) is a
user's slip: it is refused before any work with one line naming the fix. Files are created with
0666 less the user's umask, as a shell would, so a Samba share or a web server reading the data
folder sees them (022 gives 0644, 002 gives 0664).
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.errors import ObsAgentError
from agent.umask import process_umask


class OutputPathError(ObsAgentError):
    """An output path names the wrong kind of thing (a folder for a file, a file for a folder)."""


def output_file(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """`path` as a file to write: refused if it is an existing folder, or if a part of its
    folder is an existing file."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(
            f"{option} {p}: is a folder, but a file is written here; give a file name, e.g. {p / 'out.fits'}"
        )
    _parents_are_folders(p, option)
    return p


def output_folder(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """`path` as a folder to write into (created later if missing): refused if it, or a part of
    it, is an existing file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(
            f"{option} {p}: is a file, but a folder is written here; give a folder (it is created if missing)"
        )
    _parents_are_folders(p, option)
    return p


def _parents_are_folders(p: Path, option: str) -> None:
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{option} {p}: {parent} is a file, not a folder; give a path inside a folder")
            return


def user_umask() -> int:
    """The process umask (`agent.umask`)."""
    return process_umask()


def create_empty(path: Path) -> bool:
    """Create `path` empty if it does not exist, with the umask's mode; True if it was created.
    For files another program creates with a fixed mode (SQLite uses 0644): it keeps ours."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
    except FileExistsError:
        return False
    os.close(fd)
    return True
