"""`obsagent library ingest`: raw frames into the library, or (with --masters) masters made elsewhere.

Raw ingest skips masters, calibrated lights, stacks and colour images with one line each saying
what the file is; they never count as raw frames. `--masters` imports master files as masters,
converted to ADU, with `--set FIELD=VALUE` for what their headers lack.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError
from agent.library.keys import FrameType

if TYPE_CHECKING:
    from rich.console import Console

    from agent.library.ingest import IngestResult
    from agent.library.master_import import MasterImport
    from agent.library.store import Library


def add_arguments(q: argparse.ArgumentParser) -> None:
    from agent.library.master_import import SETTABLE

    q.add_argument("paths", nargs="+", metavar="PATH")
    q.add_argument("--type", choices=[t.value for t in FrameType],
                   help="frame type for files whose header does not say (with --masters: the masters' type)")  # fmt: skip
    q.add_argument("--no-build", action="store_true", help="only record; do not build masters now")
    q.add_argument("--masters", action="store_true",
                   help="the files are masters (ours or another program's): import them as masters, in ADU")  # fmt: skip
    q.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="settings",
                   help=f"with --masters: a key field the header lacks ({', '.join(SETTABLE)})")  # fmt: skip


def parse_settings(items: list[str], masters: bool) -> dict[str, str]:
    from agent.library.master_import import SETTABLE

    if items and not masters:
        raise ConfigError("--set is for --masters only; raw frames are keyed from their headers")
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().lower().replace("-", "_")
        if not sep or name not in SETTABLE or not value.strip():
            raise ConfigError(f"--set {item!r}: write FIELD=VALUE with FIELD one of {', '.join(SETTABLE)}")
        if name not in ("camera", "filter", "readout_mode", "binning"):
            try:
                float(value)
            except ValueError as exc:
                raise ConfigError(f"--set {item!r}: {name} must be a number") from exc
        out[name] = value.strip()
    return out


def cmd_ingest(args: argparse.Namespace, lib_open: Any, policy: Any, emit: Any, console: Any) -> int:
    from agent.library.camera_names import aliases_for
    from agent.library.ingest import iter_fits

    settings = parse_settings(args.settings, args.masters)
    frame_type = FrameType(args.type) if args.type else None
    with lib_open(args) as lib:
        aliases_for(lib.conn)  # a broken camera_aliases.yaml is reported before any file is read
        files = list(iter_fits(args.paths))
        if args.masters:
            return _import_masters(lib, files, frame_type, settings, policy, args.json, emit, console)
        return _ingest_raw(lib, files, frame_type, policy, args, emit, console)


def _progress(files: list[Any], quiet: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), disable=quiet or not sys.stderr.isatty())


def _ingest_raw(
    lib: Library, files: list[Any], frame_type: FrameType | None, policy: Any, args: argparse.Namespace,
    emit: Any, console: Any,
) -> int:  # fmt: skip
    from agent.commands.library import _print_sweep, _queue_for_upload
    from agent.library.sweep import sweep

    results: list[IngestResult] = []
    with _progress(files, args.json) as bar:
        task = bar.add_task("ingest", total=len(files))
        for f in files:
            results.append(lib.ingest_file(f, frame_type=frame_type))
            bar.advance(task)
    report = sweep(lib, policy, build=not args.no_build)
    _queue_for_upload(lib, report.masters_built)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    if args.json:
        def listed(status: str) -> list[dict[str, str | None]]:
            return [{"path": r.path, "reason": r.reason} for r in results if r.status == status]

        emit({"counts": counts, "quarantined": listed("quarantined"), "duplicates": listed("duplicate"),
              "skipped": listed("skipped"), "sweep": report.as_dict()})  # fmt: skip
        return 0
    from rich.text import Text

    out: Console = console()
    out.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no FITS files found")
    for r in results:
        if r.status in ("quarantined", "skipped"):
            colour = "red" if r.status == "quarantined" else "yellow"
            # one file per line, never wrapped, so the lines can be searched and counted
            out.print(Text.assemble((r.status, colour), f" {r.path}: {r.reason}"), highlight=False, soft_wrap=True)
    _print_sweep(report)
    return 0


def _import_masters(
    lib: Library, files: list[Any], frame_type: FrameType | None, settings: dict[str, str], policy: Any,
    as_json: bool, emit: Any, console: Any,
) -> int:  # fmt: skip
    from agent.library.master_import import import_master

    results: list[MasterImport] = [
        import_master(lib, f, frame_type=frame_type, settings=settings, policy=policy) for f in files
    ]
    if as_json:
        emit({"masters": [r.as_dict() for r in results]})
    else:
        out: Console = console()
        for r in results:
            if r.status == "imported" and r.key is not None:
                out.print(f"imported master #{r.master_id} {r.key.describe()} from {r.path} "
                          f"(x{r.scale:g}: {r.how})", markup=False, highlight=False, soft_wrap=True)  # fmt: skip
            else:
                out.print(f"{r.status} {r.path}: {r.reason}", markup=False, highlight=False, soft_wrap=True)
        if not results:
            out.print("no FITS files found")
    return 2 if results and all(r.status == "refused" for r in results) else 0
