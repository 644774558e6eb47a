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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obsagent", description="The observatory agent at the mount.")
    parser.add_argument("--version", action="version", version=f"obsagent {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"agent.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
