"""The systemd unit that runs `obsagent serve FILE` night after night.

Choices, each for a reason a user at the mount would care about:
- `Type=notify`, `NotifyAccess=main`: started means ready (the agent says READY=1), and only the
  agent itself may say so, not the master-building worker it spawns.
- `WatchdogSec=`: a hung libindi call or a deadlock is killed and restarted, not left till morning.
- `Restart=on-failure`: libindiclient can crash the whole process; the night resumes from the
  library and the night's progress file. `StartLimitIntervalSec=0`: it never gives up retrying,
  because nobody is there to reset a failed unit at 3 a.m. (a restart waits `RestartSec=`).
- `ExecStartPre=-… warm-up`: the numba kernels are compiled into the service's own cache before
  the night, not during its first master (minutes on a Pi the first time, a second afterwards);
  the leading `-` lets the agent start, and capture, even if the warm-up fails.
- `ExecReload=` sends SIGHUP: `systemctl reload obsagent` rereads the sequence file (a bad edit is
  refused and the running file stays in force).
- `KillSignal=SIGTERM`, `KillMode=mixed`: the agent alone gets SIGTERM and stops its own children
  after it has aborted the exposure, turned the light off, closed the cap and stopped tracking;
  `TimeoutStopSec=` gives it time for that.
- The system unit runs as a dedicated user with its data in `StateDirectory=` (/var/lib/obsagent,
  created by systemd, owned by that user) and the kernels in `CacheDirectory=` (/var/cache/obsagent).
- Output goes to the journal under the identifier `obsagent` (`journalctl -u obsagent`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Scope = Literal["system", "user"]
UNIT_NAME = "obsagent.service"
SERVICE_USER = "obsagent"


@dataclass(frozen=True)
class UnitSettings:
    """What goes into the unit. Paths are absolute; `data` None means the scope's default place."""

    sequence: Path
    scope: Scope = "system"
    data: Path | None = None
    python: Path = Path(sys.executable)
    user: str = SERVICE_USER
    watchdog_seconds: int = 120
    start_timeout_seconds: int = 1200  # the first kernel compile on a Raspberry Pi 4 takes minutes
    stop_timeout_seconds: int = 300  # abort the exposure, light off, close the cap, stop tracking
    restart_seconds: int = 30


def unit_path(scope: Scope, environ: Mapping[str, str] | None = None) -> Path:
    """Where systemd looks for a unit the administrator (system) or the user installed."""
    if scope == "system":
        return Path("/etc/systemd/system") / UNIT_NAME
    env = os.environ if environ is None else environ
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "systemd" / "user" / UNIT_NAME


def default_user_data(environ: Mapping[str, str] | None = None) -> Path:
    """The data folder of a user unit: the one `obsagent` uses by hand ($XDG_DATA_HOME/obsagent)."""
    env = os.environ if environ is None else environ
    if env.get("OBSAGENT_DATA"):
        return Path(env["OBSAGENT_DATA"])
    xdg = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return Path(xdg) / "obsagent"


def agent_command(python: Path) -> list[str]:
    """`obsagent` beside the interpreter (the venv's script), else `python -m agent.cli`."""
    script = python.with_name("obsagent")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("obsagent")
    if found and Path(found).parent == python.parent:
        return [found]
    return [str(python), "-m", "agent.cli"]


def exec_quote(arg: str) -> str:
    """One argument of an Exec line: `%` and `$` are systemd's specifiers and variables, so they
    are doubled; an argument with spaces or quotes is double-quoted (systemd.service(5), "Command lines")."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and not any(c in text for c in " \t\"'\\;"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _environment(name: str, value: str, *, specifiers: bool = False) -> str:
    """An Environment= line; systemd expands specifiers there (a literal `%` is doubled unless
    `specifiers` asks for %S or %C) but not variables (a `$` stays as it is)."""
    text = f"{name}={value if specifiers else value.replace('%', '%%')}"
    if not any(c in text for c in " \t\"'\\"):
        return f"Environment={text}"
    return 'Environment="' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(settings: UnitSettings) -> str:
    """The unit file's text."""
    s = settings
    python = str(s.python)
    system = s.scope == "system"
    lines = [
        "# Written by `obsagent service install`; run it again to change this file.",
        "[Unit]",
        f"Description=obsagent observatory agent ({s.sequence.name.replace('%', '%%')})",
    ]
    if system:  # the user manager cannot order itself after system targets
        lines += ["Wants=network-online.target", "After=network-online.target time-sync.target"]
    lines += [
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
    ]
    if system:
        lines += [
            f"User={s.user}",
            f"Group={s.user}",
            "StateDirectory=obsagent",
            "StateDirectoryMode=0750",
            "CacheDirectory=obsagent",
            _environment("OBSAGENT_DATA", str(s.data)) if s.data
            else _environment("OBSAGENT_DATA", "%S/obsagent", specifiers=True),
            _environment("NUMBA_CACHE_DIR", "%C/obsagent/numba", specifiers=True),
        ]
        if s.data:
            lines.append("ReadWritePaths=" + exec_quote(str(s.data)))
    else:
        lines.append(_environment("OBSAGENT_DATA", str(s.data or default_user_data())))
    lines += [
        "Environment=PYTHONUNBUFFERED=1",
        "ExecStartPre=-" + " ".join(exec_quote(a) for a in (python, "-m", "agent.stacking.warmup")),
        "ExecStart=" + " ".join(exec_quote(a) for a in (*agent_command(s.python), "serve", str(s.sequence))),
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"WatchdogSec={s.watchdog_seconds}",
        f"TimeoutStartSec={s.start_timeout_seconds}",
        f"TimeoutStopSec={s.stop_timeout_seconds}",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "Restart=on-failure",
        f"RestartSec={s.restart_seconds}",
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=obsagent",
    ]
    if system:
        lines += ["NoNewPrivileges=yes", "ProtectSystem=full"]
    lines += ["", "[Install]", f"WantedBy={'multi-user.target' if system else 'default.target'}", ""]
    return "\n".join(lines)
