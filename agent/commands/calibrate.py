"""`obsagent calibrate`: calibrate light frames with master bias, dark and flat."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.errors import ConfigError
from agent.fitsfile import FITS_SUFFIXES
from agent.stacking.calibrate import SENSOR_KINDS, CalibratedLight, CalibrationOptions, MasterSet, calibrate


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="calibrate light frames with master bias, dark and flat",
        description="Calibrate lights into float32 FITS: CMOS (L - MD) / MF * s0, CCD with a scaled or "
        "optimised dark; cosmetic correction from the masters' defect maps; one final clip.",
    )
    p.add_argument("lights", nargs="+", metavar="LIGHT", help="raw light frames (FITS)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the calibrated frames")
    p.add_argument("--dark", metavar="F", help="master dark")
    p.add_argument("--bias", metavar="F", help="master bias (needed to scale a dark)")
    p.add_argument("--flat", metavar="F", help="master flat")
    p.add_argument("--dark-optimize", action="store_true", help="find the dark scale k minimising noise (CCD)")
    p.add_argument("--pedestal", type=float, default=0.0, metavar="ADU", help="output pedestal added before clipping")
    p.add_argument("--no-cosmetic", action="store_true", help="do not replace hot and cold pixels")
    p.add_argument("--cfa-separate", action="store_true", help="one flat scale factor per CFA colour")
    p.add_argument("--sensor", choices=SENSOR_KINDS, help="sensor kind (default: SENSKIND header, else cmos)")
    p.add_argument("--rescale-bit-depth", action="store_true",
                   help="rescale masters of another ADC range (12-bit vs 16-bit) instead of refusing")
    p.add_argument("--suffix", default="_cal", help="appended to each output file name (default _cal)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not (args.dark or args.bias or args.flat):
        raise ConfigError("no masters given; pass at least one of --dark, --bias, --flat")
    masters = MasterSet(bias=args.bias, dark=args.dark, flat=args.flat)
    options = CalibrationOptions(
        sensor=args.sensor,
        dark_optimize=args.dark_optimize,
        pedestal=args.pedestal,
        cosmetic=not args.no_cosmetic,
        cfa_separate=args.cfa_separate,
        rescale_bit_depth=args.rescale_bit_depth,
    )
    outdir = Path(args.output)
    targets = output_paths(args.lights, outdir, args.suffix, [m for m in (args.dark, args.bias, args.flat) if m])
    outdir.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with Progress(
        TextColumn("calibrating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.json or not console.is_terminal,
    ) as bar:
        task = bar.add_task("calibrate", total=len(args.lights))
        for path, target in zip(args.lights, targets, strict=True):
            result = calibrate(path, masters, options)
            result.write(target)
            rows.append(_summary(path, target, result))
            bar.advance(task)
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps({"seconds": round(elapsed, 3), "lights": rows}, indent=2))
        return 0
    out = Console()
    table = Table(title=f"{len(rows)} lights calibrated -> {outdir}")
    for col in ("light", "formula", "k", "s0", "clipped %", "cosmetic", "masked", "warnings"):
        table.add_column(col, justify="left" if col in ("light", "formula", "warnings") else "right")
    for r in rows:
        table.add_row(
            Path(r["light"]).name,
            r["formula"],
            "-" if r["k"] is None else f"{r['k']:.4f}",
            ", ".join(f"{v:.5g}" for v in r["s0"].values()) or "-",
            f"{100 * r['clipped_fraction']:.3f}",
            str(r["defects_corrected"]),
            str(r["masked"]),
            "\n".join(r["warnings"]) or "-",
        )
    out.print(table)
    out.print(f"pedestal {options.pedestal:g} ADU, {elapsed:.1f} s")
    return 0


def _same_file(a: Path, b: Path) -> bool:
    """Two names of one file (a symlink, a hard link, `./x` and `x`)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def frame_stem(path: str) -> str:
    """A frame's name without its FITS suffix, compressed ones included (`m31_001.fits.fz` -> `m31_001`)."""
    name = Path(path).name
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def output_paths(lights: list[str], outdir: Path, suffix: str, masters: list[str]) -> list[Path]:
    """Where each calibrated light goes; refused before anything is written when one would replace
    a raw light or a master (an empty suffix into the lights' folder), or two lights share a name."""
    targets = [outdir / f"{frame_stem(light)}{suffix}.fits" for light in lights]
    inputs = [Path(p) for p in (*lights, *masters)]
    for light, target in zip(lights, targets, strict=True):
        for source in inputs:
            if _same_file(target, source):
                raise ConfigError(
                    f"calibrating {light} would overwrite {source} with {target}; "
                    "give another -o directory or a --suffix (default _cal)"
                )
    seen: dict[Path, str] = {}
    for light, target in zip(lights, targets, strict=True):
        key = target.resolve()
        if key in seen:
            raise ConfigError(
                f"{seen[key]} and {light} would both be written to {target}; calibrate them into separate -o directories"
            )
        seen[key] = light
    return targets


def _summary(path: str, target: Path, r: CalibratedLight) -> dict[str, Any]:
    return {
        "light": path,
        "output": str(target),
        "formula": r.formula,
        "k": r.k,
        "s0": r.s0,
        "pedestal": r.pedestal,
        "clipped_fraction": r.clipped_fraction,
        "defects_corrected": r.defects_corrected,
        "masked": int(np.count_nonzero(np.isnan(r.data))),  # masked in the light or a master: NaN
        "warnings": [str(w) for w in r.warnings],
    }
