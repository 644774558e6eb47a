"""The warm-up compiles every kernel the CLI uses: after it, `obsagent stack` and `obsagent calibrate`
compile nothing (no new or rewritten numba cache file), so no user waits for a compile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits


def _cache_state(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _frames(folder: Path, kind: str, level: float, count: int, exposure: float) -> list[str]:
    rng = np.random.default_rng(len(kind))
    paths = []
    for i in range(count):
        data = np.clip(rng.normal(level, 10, (700, 40)), 0, 65535).astype(
            np.uint16
        )  # 3 bands, the last short
        data[5, 7] = 60000
        header = fits.Header({"IMAGETYP": kind, "EXPTIME": exposure, "BAYERPAT": "RGGB"})
        path = folder / f"{kind.split()[0]}_{i}.fits"
        fits.PrimaryHDU(data, header).writeto(path)
        paths.append(str(path))
    return paths


def test_after_warm_up_the_cli_compiles_no_kernel(tmp_path: Path) -> None:
    """A fresh install: an empty cache, `make setup`'s warm-up, then the commands (compiles once, ~40 s)."""
    cache = tmp_path / "numba"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    subprocess.run([sys.executable, "-m", "agent.stacking.warmup"], check=True, capture_output=True, env=env)
    before = _cache_state(cache)
    assert before
    darks = _frames(tmp_path, "Dark Frame", 540.0, 9, 60.0)
    flats = _frames(tmp_path, "Flat Field", 20000.0, 9, 1.0)
    darkflats = _frames(tmp_path, "Darkflat Dark Flat", 500.0, 5, 1.0)
    lights = _frames(tmp_path, "Light Frame", 3000.0, 2, 60.0)
    cli = [sys.executable, "-m", "agent.cli"]
    md, mdf, mf = (str(tmp_path / f"{n}.fits") for n in ("md", "mdf", "mf"))
    runs = [
        [*cli, "stack", *darks, "-o", md, "--type", "dark", "--rejection", "winsorized"],
        [*cli, "stack", *darkflats, "-o", mdf, "--type", "darkflat"],
        [*cli, "stack", *flats, "-o", mf, "--type", "flat", "--darkflat", mdf],
        [*cli, "stack", *lights, *darks, "-o", str(tmp_path / "ml.fits"), "--type", "light"],
        [*cli, "calibrate", *lights, "-o", str(tmp_path / "cal"), "--dark", md, "--flat", mf],
    ]
    for cmd in runs:
        subprocess.run(cmd, check=True, capture_output=True, env=env)
    assert _cache_state(cache) == before


def test_warm_up_runs_in_process_and_reports_its_steps() -> None:
    from agent.stacking.warmup import STEPS, warm_up

    seen: list[str] = []
    assert warm_up(seen.append) > 0
    assert seen == list(STEPS)
