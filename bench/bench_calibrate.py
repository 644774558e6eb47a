#!/usr/bin/env python3
"""Time light calibration on a 12 MP (IMX294-size, 4144x2822) frame; target < 0.3 s per light.

    .venv/bin/python bench/bench_calibrate.py              # all cases, 7 repeats each
    .venv/bin/python bench/bench_calibrate.py --repeat 3 --ccdproc

Masters are the model's noise-free expectations (their content does not change the work done);
the light is one rendered frame.  Each case is warmed up once (numba compiles or loads its cache,
the masters' plan -- defect map, flat scale -- is built once per master set as in a real run) and
then timed per light; the median is reported.  `--ccdproc` also times ccdproc's
subtract_dark + flat_correct on the same arrays for reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "obsagent" / "numba"))

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402

from agent.stacking.lights import CalibrationOptions, calibrate  # noqa: E402
from agent.stacking.masterset import MasterSet  # noqa: E402
from indi_sim.model import SimModel  # noqa: E402


def header(frame_type: str, exposure: float, cfa: str | None) -> fits.Header:
    h = fits.Header()
    h["IMAGETYP"] = frame_type
    h["EXPTIME"] = exposure
    h["CCD-TEMP"] = 0.0
    if cfa:
        h["BAYERPAT"] = cfa
    return h


def time_case(name: str, light: tuple[np.ndarray, fits.Header], masters: MasterSet, options: CalibrationOptions,
              repeat: int) -> float:
    t0 = time.perf_counter()
    calibrate(light, masters, options)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        calibrate(light, masters, options)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"{name:42s} first {first:6.2f} s   median {med:6.3f} s   min {min(times):6.3f} s   "
          f"{'OK' if med < 0.3 else 'SLOW'} (< 0.3 s)")
    return med


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--ccdproc", action="store_true", help="also time ccdproc on the same arrays")
    args = ap.parse_args()

    m = SimModel("imx294", seed=1)
    cfa = m.spec.cfa
    exp = 120.0
    t0 = time.perf_counter()
    light = (m.render("light", exposure=exp, sun_altitude=-18.0), header("Light Frame", exp, cfa))
    bias = m.expected_adu("bias")
    dark = m.expected_adu("dark", exposure=exp, cap_closed=True)
    dark600 = m.expected_adu("dark", exposure=600.0, cap_closed=True)
    flat = m.expected_adu("flat", exposure=1.0, panel_brightness=100, cap_closed=True) - m.expected_adu(
        "dark", exposure=1.0, cap_closed=True)
    flat_hdr = header("Master Flat", 1.0, cfa)
    flat_hdr["FLATCAL"] = "darkflat"
    print(f"{light[0].shape[1]}x{light[0].shape[0]} ({light[0].size / 1e6:.1f} MP) frames made in "
          f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs")

    cmos = MasterSet(dark=(dark, header("Master Dark", exp, cfa)), flat=(flat, flat_hdr))
    time_case("CMOS (L-MD)/MF*s0 + cosmetic", light, cmos, CalibrationOptions(), args.repeat)
    time_case("CMOS, per-CFA s0, no cosmetic", light, cmos, CalibrationOptions(cfa_separate=True, cosmetic=False),
              args.repeat)
    ccd = MasterSet(bias=(bias, header("Master Bias", 0.0, cfa)), dark=(dark600, header("Master Dark", 600.0, cfa)),
                    flat=(flat, flat_hdr))
    time_case("scaled dark, k = exposure ratio", light, ccd, CalibrationOptions(sensor="ccd"), args.repeat)
    time_case("scaled dark, dark optimisation", light, ccd, CalibrationOptions(sensor="ccd", dark_optimize=True),
              args.repeat)

    if args.ccdproc:
        import astropy.units as u
        import ccdproc

        lccd = ccdproc.CCDData(light[0].astype(np.float32), unit="adu")
        dccd = ccdproc.CCDData(dark, unit="adu")
        fccd = ccdproc.CCDData(flat, unit="adu")
        times = []
        for _ in range(max(1, args.repeat // 2)):
            t0 = time.perf_counter()
            sub = ccdproc.subtract_dark(lccd, dccd, dark_exposure=exp * u.s, data_exposure=exp * u.s)
            ccdproc.flat_correct(sub, fccd)
            times.append(time.perf_counter() - t0)
        print(f"{'ccdproc subtract_dark + flat_correct':42s} median {statistics.median(times):6.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
