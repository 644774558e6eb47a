"""`obsagent report [--night DATE] [--sequence FILE]`: the morning report of a night."""

from __future__ import annotations

import argparse
from datetime import date

from agent.errors import ConfigError
from agent.paths import data_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="what a night captured and built, what is still needed, warnings")
    p.add_argument("--night", metavar="YYYY-MM-DD", help="the night (default: the latest)")
    p.add_argument(
        "--sequence",
        metavar="FILE",
        help="judge what is still needed with this sequence file's policy (default: the library's defaults)",
    )
    p.add_argument("--data", help="data directory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def night_date(text: str) -> str:
    """The night as the report names it; a date that does not exist is a user error, not an empty report."""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ConfigError(f"--night {text!r} is not a date; write YYYY-MM-DD, e.g. 2026-03-14") from None


def run(args: argparse.Namespace) -> int:
    from agent.night.report import build_report, print_report

    night = night_date(args.night) if args.night else None
    policy = None
    if args.sequence:
        from agent.config import load_sequence
        from agent.library.policy import library_policy

        policy = library_policy(load_sequence(args.sequence))
    report = build_report(data_dir(args.data), night, policy)
    print_report(report, as_json=args.json)
    return 0 if report.get("night") else 1
