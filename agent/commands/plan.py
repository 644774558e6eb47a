"""`obsagent plan FILE`: tonight's timeline (twilights, sky-flat windows, lights and gaps)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from agent.config import Sequence, load_sequence
from agent.errors import ConfigError
from agent.outputs import output_file
from agent.planner import NightPlan, default_night, plan_night


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="plan a night: twilights, sky-flat windows, schedule and gaps")
    p.add_argument("file", help="sequence file (YAML)")
    p.add_argument("--date", help="evening date YYYY-MM-DD (default: tonight, or the night in progress)")
    p.add_argument("--json", action="store_true", help="machine-readable output (times in UTC and local)")
    p.add_argument("--plot", metavar="PNG", help="also draw Sun and target altitudes, windows and gaps")
    p.add_argument(
        "--data",
        metavar="DIR",
        help="plan what the campaign still needs, by this data folder's library "
        "(default: OBSAGENT_DATA or the XDG data dir; without a library there, the file's full counts)",
    )
    p.set_defaults(handler=run)


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--date {text!r} is not a date; write YYYY-MM-DD, e.g. --date 2025-03-01"
        ) from None


def _campaign(seq: Sequence, night: dt.date, data: str | None) -> list[Any] | None:
    """The campaign's progress from the data folder's library, as the night itself plans with it;
    None (the file's counts) where the folder has no library yet. A damaged one is refused."""
    from agent.library.store import DB_NAME, Library
    from agent.paths import data_dir

    root = data_dir(data, create=False)
    if not (root / DB_NAME).exists():
        return None
    from agent.library.queries.campaign import campaign_progress

    with Library.open(root) as library:
        return list(campaign_progress(library, seq, night))


def run(args: argparse.Namespace) -> int:
    if args.plot:
        output_file(args.plot, "--plot")
    seq = load_sequence(args.file)
    date = _parse_date(args.date) if args.date else default_night(seq.site.zone)
    plan = plan_night(seq, date, progress=_campaign(seq, date, args.data))
    if args.plot:
        from agent.planner.plot import plot_night

        plot_night(plan, args.plot)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print_plan(plan)
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def timeline(plan: NightPlan) -> list[tuple[dt.datetime | None, dt.datetime | None, str, str]]:
    """Rows (start, end, kind, what) in time order; undated Sun events are left out."""
    rows: list[tuple[dt.datetime | None, dt.datetime | None, str, str]] = []
    names = {
        "sunset": "sunset",
        "civil_dusk": "civil dusk (Sun -6°)",
        "nautical_dusk": "nautical dusk (Sun -12°)",
        "astronomical_dusk": "astronomical dusk (Sun -18°)",
        "astronomical_dawn": "astronomical dawn (Sun -18°)",
        "nautical_dawn": "nautical dawn (Sun -12°)",
        "civil_dawn": "civil dawn (Sun -6°)",
        "sunrise": "sunrise",
    }
    for key, label in names.items():
        event = plan.events[key]
        if event.time is not None:
            rows.append((event.time, None, "sun", label))
    for window in plan.sky_flat_windows:
        if window.start is not None and window.end is not None:
            rows.append((window.start, window.end, "flats", f"sky flats at {window.period}"))
    for block in plan.blocks:
        rows.append(
            (
                block.start,
                block.end,
                "lights",
                f"{block.target}: {block.count} x {block.exposure:g}s {block.filter}",
            )
        )
    for gap in plan.gaps:
        rows.append((gap.start, gap.end, "gap", "\n".join(gap.items) if gap.items else gap.label))
    rows.sort(key=lambda row: (row[0] or plan.start, 0 if row[1] is None else 1))
    return rows


def print_plan(plan: NightPlan) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()

    def hm(moment: dt.datetime | None) -> str:
        return "" if moment is None else plan.local(moment).strftime("%a %H:%M")

    table = Table(title=f"Night of {plan.date.isoformat()} at {plan.site} (times {plan.timezone})")
    table.add_column("start")
    table.add_column("end")
    table.add_column("kind")
    table.add_column("what", overflow="fold")
    style = {"sun": "yellow", "flats": "cyan", "lights": "green", "gap": "magenta"}
    for start, end, kind, what in timeline(plan):
        table.add_row(hm(start), hm(end), kind, what, style=style.get(kind))
    console.print(table)
    for note in plan.notes:
        console.print(f"[bold]{note}[/bold]")
    for event in plan.events.values():
        if event.time is None and event.reason:
            console.print(f"{event.name.replace('_', ' ')}: none — {event.reason}")
    for window in plan.sky_flat_windows:
        if window.reason:
            console.print(f"sky flats at {window.period}: {window.reason}")
    for vis in plan.visibility:
        if vis.reason:
            console.print(f"{vis.target}: not observable — {vis.reason}")
    for short in plan.shortfalls:
        console.print(
            f"{short.target}: {short.missing} of {short.requested} x {short.exposure:g}s {short.filter} "
            "do not fit tonight"
        )
