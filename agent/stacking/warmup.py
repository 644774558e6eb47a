"""Compile every stacking and calibration kernel into numba's cache before a user waits for it.

The kernels are `parallel=True` numba functions, which numba's ahead-of-time compiler cannot
build; their on-disk cache is the ahead-of-time step instead.  A kernel is compiled once per
machine (the code is tuned to its CPU), so the warm-up runs where the agent runs: `make setup`
runs `python -m agent.stacking.warmup`, and so can a Pi user after installing (a few minutes on
a Raspberry Pi 4, once).  It runs the real recipes on tiny generated frames, so the cached
signatures are exactly the ones `obsagent stack`, `obsagent calibrate` and the library's build
worker ask for; a later run loads them (well under a second) instead of compiling (tens of
seconds here, minutes on a Pi).

NUMBA_CACHE_DIR must be the directory the agent uses (`agent.paths.cache_dir()`, which the CLI
sets), or the warm cache is never found: `main` sets it before numba is imported.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

STEPS = (
    "bias/dark/dark-flat masters (16-bit frames)",
    "flat master calibrated by a dark flat",
    "float32 frames, every rejection",
    "lights: CMOS and CCD, dark optimisation, cosmetic",
)


def warm_up(progress: Callable[[str], None] | None = None) -> float:
    """Run each recipe once on tiny frames; returns the seconds taken (compile or cache load)."""
    import numpy as np

    from agent.fitsfile import write_fits_atomic
    from agent.stacking.combine import METHODS, combine
    from agent.stacking.darkopt import DarkOptimizationFailed
    from agent.stacking.lights import CalibrationOptions, calibrate
    from agent.stacking.masterset import MasterSet
    from agent.stacking.recipes import build_master

    start = time.perf_counter()
    rng = np.random.default_rng(7)
    rows, cols = 96, 128
    yy, xx = np.mgrid[0:rows, 0:cols]
    vignette = 1.0 - 0.2 * (((xx - cols / 2) / cols) ** 2 + ((yy - rows / 2) / rows) ** 2)
    hot = rng.random((rows, cols)) < 0.02
    with tempfile.TemporaryDirectory(prefix="obsagent-warmup-") as tmp:
        folder = Path(tmp)

        def frames(
            kind: str, count: int, level: np.ndarray, exposure: float, dtype: type = np.uint16
        ) -> list[Path]:
            from astropy.io import fits

            paths = []
            for i in range(count):
                data = np.clip(level + rng.normal(0, 4, (rows, cols)), 0, 65535)
                header = fits.Header(
                    {"IMAGETYP": kind, "EXPTIME": exposure, "CCD-TEMP": -10.0, "BAYERPAT": "RGGB"}
                )
                path = folder / f"{kind.replace(' ', '_')}_{exposure:g}_{i:02d}.fits"
                write_fits_atomic(
                    path, data.astype(dtype) if dtype is np.float32 else np.rint(data).astype(dtype), header
                )
                paths.append(path)
            return paths

        def step(i: int) -> None:
            if progress is not None:
                progress(STEPS[i])

        step(0)
        bias = build_master("bias", frames("Bias Frame", 5, np.full((rows, cols), 500.0), 0.0), threads=1)
        dark_level = 500.0 + 40.0 + hot * 3000.0
        darks = frames("Dark Frame", 12, dark_level, 60.0)
        dark = build_master("dark", darks, method="winsorized", threads=1)
        build_master("dark", darks, method="sigma", combine="median", threads=1)
        darkflat = build_master(
            "darkflat", frames("Dark Flat", 5, np.full((rows, cols), 501.0), 1.0), threads=1
        )
        step(1)
        flat_files = frames("Flat Field", 7, 500.0 + 20000.0 * vignette, 1.0)
        flat = build_master("flat", flat_files, darkflat=darkflat, threads=1)
        build_master("flat", flat_files, bias=bias, dark=dark, threads=1)
        step(2)
        floats = frames("Light Frame", 8, 1000.0 + 100.0 * vignette, 60.0, np.float32)
        u16 = frames("Light Frame", 8, 1000.0 + 100.0 * vignette, 60.0)
        for method in METHODS:
            for files in (floats, u16):
                combine(files, method=method, normalize="additive-scale", threads=1)
        combine(floats, method="winsorized", normalize="none", rejection_maps=True, threads=1)
        step(3)
        lights = frames("Light Frame", 1, dark_level + 3000.0 * vignette, 60.0)
        calibrate(lights[0], MasterSet(dark=dark, flat=flat))
        calibrate(
            lights[0], MasterSet(dark=dark, flat=flat), CalibrationOptions(cfa_separate=True, cosmetic=False)
        )
        ccd = MasterSet(bias=bias, dark=dark, flat=flat)
        calibrate(lights[0], ccd, CalibrationOptions(sensor="ccd"))
        with contextlib.suppress(DarkOptimizationFailed):  # toy frames; the kernels are compiled anyway
            calibrate(lights[0], ccd, CalibrationOptions(sensor="ccd", dark_optimize=True))
    return time.perf_counter() - start


def main() -> int:
    from agent.paths import cache_dir

    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir()))
    print(f"obsagent: compiling the stacking kernels into {os.environ['NUMBA_CACHE_DIR']} (once per install)")
    seconds = warm_up(lambda what: print(f"  {what}", flush=True))
    print(f"obsagent: kernels ready ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
