"""`obsagent library ...`: the calibration library — ingest, sweep, needs, and what it holds."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.commands.library_ingest import add_arguments as add_ingest_arguments
from agent.commands.values import non_negative, positive, positive_int
from agent.errors import ConfigError
from agent.library.keys import CALIBRATION_TYPES, LOOSER_FIELDS, FrameType, LibraryPolicy, SensorKind
from agent.library.store import Library

if TYPE_CHECKING:
    from rich.console import Console

    from agent.library.sweep import SweepReport

log = logging.getLogger(__name__)

_TYPES = [t.value for t in FrameType]
EXPIRED = "expired"  # --allow-looser expired: the sequence file's allow_looser.expired_masters


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "library", help="calibration library: ingest frames, build masters, show what is needed"
    )
    lsub = p.add_subparsers(dest="library_command", metavar="ACTION")
    lsub.required = True

    def common(q: argparse.ArgumentParser, *, json_flag: bool = True, policy: bool = False) -> None:
        q.add_argument(
            "--data", metavar="DIR", help="data directory (default: OBSAGENT_DATA or XDG data dir)"
        )
        if json_flag:
            q.add_argument("--json", action="store_true", help="machine-readable output")
        if policy:
            q.add_argument(
                "--min-frames",
                action="append",
                default=[],
                metavar="TYPE=N",
                help="frames needed for a master (defaults bias=50 dark=20 darkflat=20 flat=20)",
            )
            q.add_argument(
                "--max-age",
                action="append",
                default=[],
                metavar="TYPE=DAYS",
                help="master age limit (defaults bias=180 dark=90 darkflat=30 flat=14)",
            )
            q.add_argument(
                "--temperature-tolerance",
                type=positive,
                default=1.0,
                metavar="C",
                help="frames group, and masters match lights, within ±C of the sensor temperature (default 1)",
            )
            q.add_argument("--allow-looser", action="append", default=[], choices=sorted(LOOSER_FIELDS | {EXPIRED}),
                           help="allow a looser match on this field, or `expired` masters "
                                "(each reported as a warning)")  # fmt: skip
            q.add_argument("--temperature-within", type=positive, metavar="C",
                           help="limit of a looser temperature match, °C (needed with --allow-looser temperature)")  # fmt: skip

    q = lsub.add_parser(
        "ingest", help="record existing raw FITS files (folders searched recursively), or import --masters"
    )
    add_ingest_arguments(q)
    common(q, policy=True)
    q.set_defaults(handler=cmd_ingest)

    q = lsub.add_parser(
        "sweep", help="finish interrupted jobs, ingest orphaned captures, build ready masters"
    )
    q.add_argument(
        "--retry-failed", action="store_true", help="schedule groups whose last build failed again"
    )
    q.add_argument("--no-build", action="store_true", help="only report what is ready or waiting")
    common(q, policy=True)
    q.set_defaults(handler=cmd_sweep)

    q = lsub.add_parser("needs", help="what calibration is missing, accumulating, expiring or building")
    q.add_argument(
        "--days", type=non_negative, default=30.0, metavar="N", help="lights of the last N days (default 30)"
    )
    q.add_argument("--expiring", type=non_negative, default=14.0, metavar="D", help="masters expiring within D days")
    common(q, policy=True)
    q.set_defaults(handler=cmd_needs)

    q = lsub.add_parser("status", help="counts of frames, masters, lights and jobs")
    common(q)
    q.set_defaults(handler=cmd_status)

    q = lsub.add_parser("masters", help="master frames (current ones unless --all)")
    q.add_argument("--all", action="store_true", help="include superseded masters")
    q.add_argument("--type", choices=[t.value for t in CALIBRATION_TYPES])
    common(q)
    q.set_defaults(handler=cmd_masters)

    q = lsub.add_parser("frames", help="recorded frames")
    q.add_argument("--state", choices=["accumulating", "in_master", "rejected", "quarantined", "light"])
    q.add_argument("--type", choices=_TYPES)
    q.add_argument("--limit", type=positive_int, default=200, metavar="N")
    common(q)
    q.set_defaults(handler=cmd_frames)

    q = lsub.add_parser("lights", help="lights and their calibration status")
    q.add_argument("--status", choices=["pending", "calibrated", "failed", "no_masters", "stale"])
    q.add_argument("--limit", type=positive_int, default=200, metavar="N")
    common(q)
    q.set_defaults(handler=cmd_lights)

    q = lsub.add_parser("match", help="which masters a light would use, and why")
    q.add_argument("light", type=int, metavar="FRAME_ID")
    common(q, policy=True)
    q.set_defaults(handler=cmd_match)

    q = lsub.add_parser("camera", help="show cameras, or set a camera's sensor kind (cmos/ccd)")
    q.add_argument("name", nargs="?", help="camera name as in INSTRUME")
    q.add_argument("--kind", choices=[k.value for k in SensorKind], help="sensor kind to record")
    common(q)
    q.set_defaults(handler=cmd_camera)


# helpers ------------------------------------------------------------------------------------


def _pairs(items: list[str], option: str, cast: Callable[[str], Any]) -> dict[FrameType, Any]:
    out: dict[FrameType, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            kind = FrameType(name.strip().lower())
            if not sep or kind is FrameType.LIGHT:
                raise ValueError
            out[kind] = cast(value)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"{option} {item!r}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(
                f"{option} {item!r}: write TYPE=VALUE with TYPE one of bias, dark, darkflat, flat"
            ) from exc
    return out


def policy_from(args: argparse.Namespace) -> LibraryPolicy:
    base = LibraryPolicy()
    return LibraryPolicy(
        min_frames={**base.min_frames, **_pairs(args.min_frames, "--min-frames", positive_int)},
        max_age_days={**base.max_age_days, **_pairs(args.max_age, "--max-age", positive)},
        temperature_tolerance=args.temperature_tolerance,
        looser_matches=frozenset(args.allow_looser) - {EXPIRED},
        looser_temperature_within=args.temperature_within,
        expired_masters=EXPIRED in args.allow_looser,
    )


def _open(args: argparse.Namespace) -> Library:
    return Library.open(args.data)


def _emit(data: object) -> None:
    # one string, one write: json.dump writes piece by piece, twice as slow for 50,000 frames
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _date(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M")


def _num(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _console() -> Console:
    from rich.console import Console

    return Console()


def _queue_for_upload(lib: Library, master_ids: list[int]) -> None:
    """Queue the masters a sweep built for upload at once (the sync sweep would find them
    later anyway); the library itself knows nothing of sync."""
    if master_ids:
        from agent.sync.outbox import queue_library_masters

        queue_library_masters(lib.conn, master_ids)


def _print_sweep(report: SweepReport) -> None:
    console = _console()
    if report.orphans_ingested:
        console.print(f"ingested {report.orphans_ingested} frames written before a crash")
    if report.jobs_recovered:
        console.print(f"re-queued {report.jobs_recovered} interrupted build jobs")
    if report.jobs_done:
        console.print(f"built {len(report.jobs_done)} masters (jobs {', '.join(map(str, report.jobs_done))})")
    for job, reason in report.jobs_failed:
        console.print(f"[red]build job #{job} failed:[/red] {reason}")
    for w in report.waiting:
        console.print(f"[yellow]waiting[/yellow] {w.key.describe()} ({w.count} frames): {w.reason}")


# handlers -----------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    from agent.commands.library_ingest import cmd_ingest as run

    return run(args, _open, policy_from(args), _emit, _console)


def cmd_sweep(args: argparse.Namespace) -> int:
    from agent.library.recovery import retry_failed
    from agent.library.sweep import sweep

    policy = policy_from(args)
    with _open(args) as lib:
        if args.retry_failed:
            retry_failed(lib)
        report = sweep(lib, policy, build=not args.no_build)
        _queue_for_upload(lib, report.masters_built)
        if args.json:
            _emit(report.as_dict())
        else:
            _print_sweep(report)
            if not (report.jobs_done or report.jobs_failed or report.waiting or report.jobs_recovered):
                _console().print("nothing to do")
    return 1 if report.jobs_failed else 0


def cmd_needs(args: argparse.Namespace) -> int:
    from rich.table import Table

    from agent.library.needs import needs

    policy = policy_from(args)
    with _open(args) as lib:
        t0 = time.perf_counter()
        items = needs(lib, policy, light_days=args.days, expiring_days=args.expiring)
        elapsed = time.perf_counter() - t0
    if args.json:
        _emit({"needs": [n.as_dict() for n in items], "seconds": round(elapsed, 4)})
        return 0
    if not items:
        _console().print("nothing needed: every recent light configuration has current masters")
        return 0
    table = Table(title="calibration needs, most urgent first")
    for col in ("what", "type", "configuration", "progress", "why"):
        table.add_column(col)
    for n in items:
        frac = min(n.have / n.target, 1.0) if n.target else 0.0
        bar = "█" * int(round(frac * 10)) + "░" * (10 - int(round(frac * 10)))
        table.add_row(n.kind, n.frame_type.value, n.key.describe(), f"{bar} {n.have}/{n.target}", n.reason)
    _console().print(table)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from agent.sync.outbox import outbox_status

    with _open(args) as lib:
        counts = lib.counts()
        counts["sync"] = outbox_status(lib.conn)
    if args.json:
        _emit(counts)
        return 0
    console = _console()
    console.print(f"database {counts['database']} (schema {counts['schema_version']})")
    frames = counts["frames"]
    assert isinstance(frames, dict)
    for k, n in sorted(frames.items()):
        state, ftype = k.split("/")
        console.print(f"  {n:7d} {ftype} frames {state.replace('_', ' ')}")
    console.print(f"  {counts['current_masters']} current masters ({counts['masters']} in all)")
    console.print(f"  lights: {counts['lights'] or 'none'}   jobs: {counts['jobs'] or 'none'}")
    sync = counts["sync"]
    assert isinstance(sync, dict)
    targets = sync.get("targets") or {}
    console.print(f"  sync: {sync.get('queued', 0)} masters queued"
                  + "".join(f"; {name}: {t.get('confirmed', 0)} confirmed, {t.get('pending', 0)} pending"
                            for name, t in targets.items()))
    return 0


def cmd_masters(args: argparse.Namespace) -> int:
    from rich.table import Table

    with _open(args) as lib:
        masters = lib.masters(
            current_only=not args.all, frame_type=FrameType(args.type) if args.type else None
        )
    if args.json:
        _emit([m.as_dict() for m in masters])
        return 0
    table = Table(title="masters" + (" (all)" if args.all else " (current)"))
    for col in ("id", "type", "camera", "gain/offset", "bin", "readout", "filter", "temp", "exposure", "n",
                "created", "expires", "superseded by"):  # fmt: skip
        table.add_column(col)
    for m in masters:
        k = m.key
        table.add_row(
            str(m.id), k.frame_type.value, f"{k.camera} ({k.sensor_kind.value})", f"{_num(k.gain)}/{_num(k.offset)}",
            k.binning, k.readout_mode or "-", k.filter or "-",
            "-" if k.temperature is None else f"{k.temperature:+.1f}", _num(m.exposure), str(m.n_sources),
            _date(m.created_at), _date(m.expires_at), _num(m.superseded_by),
        )  # fmt: skip
    _console().print(table)
    return 0


def cmd_frames(args: argparse.Namespace) -> int:
    from rich.table import Table

    with _open(args) as lib:
        rows = lib.frames(
            state=args.state, frame_type=FrameType(args.type) if args.type else None, limit=args.limit
        )
    if args.json:
        _emit(rows)
        return 0
    table = Table(title=f"frames (first {args.limit})")
    for col in (
        "id",
        "state",
        "type",
        "camera",
        "gain/offset",
        "filter",
        "exp",
        "temp",
        "captured",
        "path / reason",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]), str(r["state"]), _num(r["frame_type"]), _num(r["camera"]),
            f"{_num(r['gain'])}/{_num(r['offset'])}", _num(r["filter"]), _num(r["exposure"]),
            _num(r["temperature"]), _date(r["captured_at"]),  # type: ignore[arg-type]
            str(r["path"]) + (f"\n{r['reason']}" if r["reason"] else ""),
        )  # fmt: skip
    _console().print(table)
    return 0


def cmd_lights(args: argparse.Namespace) -> int:
    from rich.table import Table

    with _open(args) as lib:
        rows = lib.lights(status=args.status, limit=args.limit)
    if args.json:
        _emit(rows)
        return 0
    table = Table(title="lights")
    for col in (
        "id",
        "status",
        "camera",
        "filter",
        "exp",
        "temp",
        "captured",
        "masters",
        "warnings / reason",
    ):
        table.add_column(col)
    for r in rows:
        notes = list(r["warnings"]) + ([str(r["reason"])] if r["reason"] else [])  # type: ignore[call-overload]
        table.add_row(
            str(r["id"]), str(r["status"]), _num(r["camera"]), _num(r["filter"]), _num(r["exposure"]),
            _num(r["temperature"]), _date(r["captured_at"]),  # type: ignore[arg-type]
            ", ".join(f"{k} #{v}" for k, v in dict(r["masters_used"]).items()),  # type: ignore[call-overload]
            "\n".join(notes),
        )  # fmt: skip
    _console().print(table)
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from agent.library.match import light_key, match_light

    policy = policy_from(args)
    with _open(args) as lib:
        key, exposure = light_key(lib, args.light)
        result = match_light(lib, key, exposure, policy)
    if args.json:
        _emit(
            {
                "light": args.light,
                "complete": result.complete,
                "masters": result.masters_used,
                "warnings": result.warnings,
                "explanation": result.explain(),
            }
        )
        return 0
    console = _console()
    console.print(f"light #{args.light}: {key.describe()}, {exposure:g} s")
    for line in result.explain():
        console.print(line, markup=False)
    return 0 if result.complete else 1


def cmd_camera(args: argparse.Namespace) -> int:
    from agent.library.camera_names import aliases_for, canonical_camera, known_spelling

    with _open(args) as lib:
        if args.name:  # the name frames are keyed by, however the user spells it
            args.name = known_spelling(lib.conn, canonical_camera(args.name, aliases_for(lib.conn)))
        if args.kind:
            if not args.name:
                raise ConfigError("give the camera name: obsagent library camera NAME --kind ccd")
            n = lib.set_camera_kind(args.name, SensorKind(args.kind))
            if not args.json:
                _console().print(f"{args.name}: sensor kind {args.kind} ({n} frames updated)")
        cams = lib.cameras()
    if args.json:
        _emit(cams)
    elif not args.kind:
        for c in cams:
            if args.name and c["name"] != args.name:
                continue
            _console().print(f"{c['name']}: {c['sensor_kind']} ({c['frames']} frames)")
    return 0
