"""`obsagent stack`: build a master frame from FITS files with pixel rejection."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.commands.values import non_negative, positive_int
from agent.errors import ConfigError
from agent.fitsfile import read_header
from agent.stacking.calibrate import MASTER_KINDS, build_master
from agent.stacking.combine import COMBINES, MASTER_TYPES, METHODS, Master, _infer_type, combine
from agent.stacking.frames import masked_count
from agent.stacking.normalize import NORMALIZATIONS

DEFAULT_NORMALIZATION = {"flat": "multiplicative", "light": "additive-scale"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stack",
        help="combine frames into a master (bias, dark, flat, dark flat, light)",
        description="Stack FITS frames with pixel rejection into a float32 master with provenance headers.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="input FITS frames (same size, depth, binning)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.fits", help="master FITS to write")
    p.add_argument("--type", choices=sorted(MASTER_TYPES), help="frame type (default: from IMAGETYP)")
    p.add_argument(
        "--rejection", choices=METHODS, default="auto", help="pixel rejection (default: auto by count)"
    )
    p.add_argument("--low", type=non_negative, help="low threshold (gesd: max outlier fraction)")
    p.add_argument("--high", type=non_negative, help="high threshold (gesd: alpha)")
    p.add_argument("--combine", choices=COMBINES, default="mean", help="combination of kept values")
    p.add_argument(
        "--normalize",
        choices=NORMALIZATIONS,
        help="normalisation (default: multiplicative for flats, additive-scale for lights, else none)",
    )
    p.add_argument(
        "--mem-limit", type=positive_int, default=400, metavar="MB", help="working memory bound (default 400)"
    )
    p.add_argument("--threads", type=positive_int, help="worker threads (default: all cores)")
    p.add_argument("--rejection-maps", action="store_true", help="also write OUT_rejlow/_rejhigh.fits")
    p.add_argument("--darkflat", metavar="F", help="flats: master dark flat to calibrate each flat with (preferred)")
    p.add_argument("--bias", metavar="F", help="flats: master bias to calibrate each flat with")
    p.add_argument("--dark", metavar="F", help="flats: master dark scaled to the flat exposure (with --bias)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    p.set_defaults(handler=run)


def _same_file(a: str | Path, b: str | Path) -> bool:
    """Two names of one file (a symlink, a hard link, `./x` and `x`)."""
    pa, pb = Path(a), Path(b)
    if pa.resolve() == pb.resolve():
        return True
    try:
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except OSError:
        return False


def refuse_overwriting_inputs(args: argparse.Namespace) -> None:
    """The master (and its rejection maps) must never replace one of the frames or masters it is
    made from: checked before anything is read or written."""
    out = Path(args.output)
    outputs = [out]
    if args.rejection_maps:
        outputs += [out.with_name(f"{out.stem}_rejlow{out.suffix}"), out.with_name(f"{out.stem}_rejhigh{out.suffix}")]
    inputs = [*args.files, *(m for m in (args.darkflat, args.bias, args.dark) if m)]
    for target in outputs:
        for source in inputs:
            if _same_file(target, source):
                raise ConfigError(
                    f"-o {args.output}: {target} is one of the inputs ({source}) and would be overwritten; "
                    "choose another output name"
                )


def run(args: argparse.Namespace) -> int:
    refuse_overwriting_inputs(args)
    kind = args.type or _infer_type(read_header(args.files[0]))
    normalize = args.normalize or DEFAULT_NORMALIZATION.get(kind or "", "none")
    calibrators = {"darkflat": args.darkflat, "bias": args.bias, "dark": args.dark}
    if kind not in MASTER_KINDS and any(calibrators.values()):
        raise ConfigError("--darkflat/--bias/--dark calibrate flats only; drop them or use --type flat")
    console = Console(stderr=True)
    start = time.perf_counter()
    with Progress(
        TextColumn("stacking"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.json or not console.is_terminal,
    ) as bar:
        task = bar.add_task("stack", total=1.0)
        options: dict[str, Any] = {
            "method": args.rejection,
            "low": args.low,
            "high": args.high,
            "combine": args.combine,
            "normalize": normalize,
            "mem_limit_mb": args.mem_limit,
            "threads": args.threads,
            "rejection_maps": args.rejection_maps,
            "progress": lambda f: bar.update(task, completed=f),
        }
        master: Master
        if kind in MASTER_KINDS:  # calibration recipes: no pre-calibrated darks, calibrated flats
            master = build_master(kind, args.files, **calibrators, **options)
        else:
            master = combine(args.files, frame_type=args.type, **options)
    path = master.write(args.output)
    elapsed = time.perf_counter() - start
    h = master.header
    summary = {
        "output": str(path),
        "imagetyp": h["IMAGETYP"],
        "ncombine": h["NCOMBINE"],
        "rejection": h["REJECT"],
        "low": h["REJ_LOW"],
        "high": h["REJ_HIGH"],
        "combine": h["COMBINE"],
        "normalize": h["NORMALIZ"],
        "rejected_low": h["REJFRLO"],
        "rejected_high": h["REJFRHI"],
        "seconds": round(elapsed, 3),
        "frames": [
            {
                "path": f.path,
                "median": f.location,
                "noise": f.noise,
                "norm_factor": f.norm_factor,
                "rejected_low": f.rejected_low,
                "rejected_high": f.rejected_high,
                "masked": masked_count(source),
            }
            for f, source in zip(master.frames, args.files, strict=True)
        ],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    out = Console()
    table = Table(title=f"{h['IMAGETYP']} from {h['NCOMBINE']} frames -> {path}")
    for col in ("frame", "median", "noise", "norm", "rej low %", "rej high %", "masked"):
        table.add_column(col, justify="right" if col != "frame" else "left")
    for f, row in zip(master.frames, summary["frames"], strict=True):
        table.add_row(
            str(f.path),
            f"{f.location:.6g}",
            f"{f.noise:.4g}",
            f"{f.norm_factor:.5f}",
            f"{100 * f.rejected_low:.3f}",
            f"{100 * f.rejected_high:.3f}",
            "-" if row["masked"] is None else str(row["masked"]),
        )
    out.print(table)
    out.print(
        f"{h['REJECT']} ({h['REJ_LOW']}, {h['REJ_HIGH']}), {h['COMBINE']}, normalisation {h['NORMALIZ']}: "
        f"{100 * h['REJFRLO']:.3f}% low / {100 * h['REJFRHI']:.3f}% high rejected in {elapsed:.1f} s"
    )
    return 0
