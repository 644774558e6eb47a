"""`obsagent report [--night DATE] [--sequence FILE]`: the morning report of a night;
`obsagent report --campaign --sequence FILE`: each target's progress over all nights."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

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
    p.add_argument(
        "--campaign",
        action="store_true",
        help="each target's progress towards the sequence file's totals, over all nights (needs --sequence)",
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


def refuse_unusable_library(root: Path) -> None:
    """Open the folder's library as every library command does, so a damaged, foreign or newer one
    is the same one line (exit 2) here, never "no night has run yet"; a folder without one is left
    without one."""
    from agent.library.store import DB_NAME, Library

    if (root / DB_NAME).exists() or (root / DB_NAME).is_symlink():
        with Library(root, check=False):
            pass


def run(args: argparse.Namespace) -> int:
    from agent.night.report import build_report, print_report

    night = night_date(args.night) if args.night else None
    if args.campaign:
        return run_campaign(args, night)
    root = data_dir(args.data)
    refuse_unusable_library(root)
    policy = None
    if args.sequence:
        from agent.config import load_sequence
        from agent.library.policy import library_policy

        policy = library_policy(load_sequence(args.sequence))
    report = build_report(root, night, policy)
    print_report(report, as_json=args.json)
    return 0 if report.get("night") else 1


def run_campaign(args: argparse.Namespace, night: str | None) -> int:
    """Done/total of every exposure entry, the nights that gave lights, the last, finished or not."""
    import json

    from agent.config import load_sequence
    from agent.library.queries.campaign import campaign_progress, campaign_summary
    from agent.library.store import Library

    if not args.sequence:
        raise ConfigError("--campaign needs --sequence FILE: the campaign totals are the file's counts")
    seq = load_sequence(args.sequence)
    with Library.open(args.data) as library:
        summary = campaign_summary(campaign_progress(library, seq, night))
    if args.json:
        print(json.dumps({"night": night, "targets": summary}, indent=1))
        return 0
    if not summary:
        print("no targets in the sequence file")
    for target in summary:
        state = "finished" if target["finished"] else f"{target['done']}/{target['total']}"
        nights = target["nights"]
        last = f", last {target['last_night']}" if target["last_night"] else ""
        print(f"{target['target']}: {state} ({nights} night{'s' * (nights != 1)}{last})")
        for e in target["exposures"]:
            mode = f" mode {e['readout_mode']}" if e["readout_mode"] else ""
            cap = f", {e['per_night']} a night" if e["per_night"] else ""
            done = "  complete" if e["finished"] else ""
            tonight = f", {e['tonight']} on {night}" if night else ""
            print(f"  {e['filter']:<6} {e['exposure']:>6g}s{mode}  {e['done']:>4}/{e['total']:<4}"
                  f" ({len(e['nights'])} nights{cap}{tonight}){done}")  # fmt: skip
    return 0
