"""`obsagent` command line: one sub-command per user task.

Each module in `agent.commands` defines `register(subparsers)`; the sub-command's handler
returns an exit code. User errors (`ObsAgentError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import errno
import importlib
import logging
import os
import pkgutil
import re
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

from agent import __version__, commands
from agent.errors import ObsAgentError
from agent.paths import cache_dir


def command_names() -> list[str]:
    """Modules of agent.commands that register a sub-command (helpers such as library_ingest do not)."""
    folder = Path(commands.__path__[0])
    return sorted(
        info.name
        for info in pkgutil.iter_modules(commands.__path__)
        if "\ndef register(" in (folder / f"{info.name}.py").read_text(encoding="utf-8")
    )


_HELP = re.compile(r'add_parser\(\s*"(?P<name>[\w-]+)"\s*,\s*help=(?P<help>"(?:[^"\\]|\\.)*")')
_DOCSTRING = re.compile(r'^"""`[^`]*`:\s*(?P<summary>[^\n]*?)\.?(?:"""|\n)')


def command_summary(name: str) -> str:
    """The one-line help of a sub-command, read from its module's source without importing it.

    `obsagent --help` must list every command in a fraction of a second; importing them all would
    import numba, astropy and PyIndi (over a second, several on a Pi).  The `help=` given to
    `add_parser` is used, else the summary after the colon in the module's docstring.
    """
    source = (Path(commands.__path__[0]) / f"{name}.py").read_text(encoding="utf-8")
    for match in _HELP.finditer(source):
        if match.group("name") == name:
            return str(ast.literal_eval(match.group("help")))
    doc = _DOCSTRING.match(source)
    return doc.group("summary") if doc else ""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block) naming the fix: the help."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that sub-command's module is imported (numba, PyIndi and
    astropy are slow to import, and a command needs only its own).  Without it, every command is
    listed with its summary but none is imported: that parser serves `--help`, `--version` and
    errors that name no command."""
    parser = _Parser(prog="obsagent", description="The observatory agent at the mount.")
    parser.add_argument("--version", action="version", version=f"obsagent {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    if only:
        importlib.import_module(f"agent.commands.{only}").register(sub)
    else:
        for name in command_names():
            sub.add_parser(name, help=command_summary(name))
    return parser


def _requested(argv: Sequence[str]) -> str | None:
    names = set(command_names())
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in names else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # before any command imports numba: the kernels' cache is where `make setup` warmed it
    if "NUMBA_CACHE_DIR" not in os.environ:
        with contextlib.suppress(OSError):  # no writable home: numba falls back to its own places
            os.environ["NUMBA_CACHE_DIR"] = str(cache_dir())
    parser = build_parser(_requested(argv))
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except ObsAgentError as exc:
        print(f"obsagent: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("obsagent: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"obsagent: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("obsagent: error: not enough memory; lower --mem-limit or close other programs", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last resort: one line and where the details are
        line = database_error_line(exc)
        if line is not None:
            print(f"obsagent: error: {line}", file=sys.stderr)
            return 2
        log = crash_log(exc)
        print(f"obsagent: internal error: {type(exc).__name__}: {exc}; details in {log} (please report it)",
              file=sys.stderr)
        return 70


_OS_FIXES = {
    errno.ENOSPC: "the disk is full; free some space or point --data at another disk",
    errno.EDQUOT: "your disk quota is used up; free some space",
    errno.EACCES: "permission denied; check the folder's owner and permissions",
    errno.EPERM: "not permitted; check the folder's owner and permissions",
    errno.EROFS: "the disk is read-only; remount it writable or choose another folder",
    errno.ENOENT: "no such file or folder; check the path (a USB disk unplugged?)",
    errno.EISDIR: "that is a folder; name a file",
    errno.ENOTDIR: "a part of that path is a file, not a folder; check the path",
    errno.EEXIST: "it exists already and is not a folder; choose another path",
    errno.EIO: "the disk reports an I/O error; check the disk and its cable",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or give fewer files at once",
}


def os_error_line(exc: OSError) -> str:
    """One line naming the file and the fix, whatever call failed."""
    where = exc.filename if exc.filename is not None else ""
    what = _OS_FIXES.get(exc.errno or 0, exc.strerror or str(exc))
    return f"{where}: {what}" if where else what


def database_error_line(exc: Exception) -> str | None:
    """SQLite errors a user can cause (a damaged or foreign library, a locked one), else None."""
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return "the library is locked by another obsagent writing to it; retry in a moment"
    if isinstance(exc, sqlite3.DatabaseError):
        return (f"the library database cannot be read ({exc}); it is damaged or not an obsagent library: "
                "restore it from a backup or point --data at another folder")
    return None


def crash_log(exc: BaseException) -> Path:
    """Write the traceback of an unforeseen error to a file the user can send; returns its path."""
    import datetime as dt
    import tempfile
    import traceback

    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "obsagent"
    text = "".join(traceback.format_exception(exc))
    for folder in (state, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"crash-{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
            path.write_text(f"obsagent {__version__} {sys.argv}\n{text}")
            return path
        except OSError:
            continue
    return Path("(no writable folder for the log)")


if __name__ == "__main__":
    sys.exit(main())
