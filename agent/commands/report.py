"""`obsagent report [--night DATE]`: the morning report of a night."""

from __future__ import annotations

import argparse

from agent.paths import data_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="what a night captured and built, what is still needed, warnings")
    p.add_argument("--night", metavar="YYYY-MM-DD", help="the night (default: the latest)")
    p.add_argument("--data", help="data directory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from agent.night.report import build_report, print_report

    report = build_report(data_dir(args.data), args.night)
    print_report(report, as_json=args.json)
    return 0 if report.get("night") else 1
