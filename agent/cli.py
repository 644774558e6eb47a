"""`obsagent` command line: one sub-command per user task.

Each module in `agent.commands` defines `register(subparsers)`; the sub-command's handler
returns an exit code. User errors (`ObsAgentError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from agent import __version__, commands
from agent.errors import ObsAgentError


def command_names() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(commands.__path__))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that sub-command's module is imported (numba, PyIndi and
    astropy are slow to import, and a command needs only its own)."""
    parser = argparse.ArgumentParser(prog="obsagent", description="The observatory agent at the mount.")
    parser.add_argument("--version", action="version", version=f"obsagent {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in [only] if only else command_names():
        module = importlib.import_module(f"agent.commands.{name}")
        module.register(sub)
    return parser


def _requested(argv: Sequence[str]) -> str | None:
    names = set(command_names())
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in names else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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


if __name__ == "__main__":
    sys.exit(main())
