"""The memory bound holds whatever the frame count, and `obsagent stack` works end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from agent.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_peak_memory_stays_within_limit(tmp_path: Path) -> None:
    """40 frames of 1200x1600 uint16 (154 MB on disk) stacked with a 48 MB limit."""
    rng = np.random.default_rng(0)
    rows, cols, n = 1200, 1600, 40
    frame = rng.normal(1000, 10, (rows, cols)).astype(np.uint16)
    for i in range(n):
        fits.PrimaryHDU(np.roll(frame, i, axis=1)).writeto(tmp_path / f"f{i:02d}.fits")
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        from pathlib import Path
        import numpy as np
        from agent.stacking.combine import combine
        # warm the kernel on a tiny stack so compilation or cache loading is not counted
        combine([np.zeros((4, 4), np.uint16)] * {n}, method="winsorized")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        paths = sorted(Path({str(tmp_path)!r}).glob("f*.fits"))
        master = combine(paths, method="winsorized", mem_limit_mb=48, threads=1)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"before_kb": before, "after_kb": after, "mean": float(master.data.mean())}}))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    grown_mb = (result["after_kb"] - result["before_kb"]) / 1024
    input_mb = n * rows * cols * 2 / 2**20
    assert grown_mb < 48 + 24, f"peak RSS grew by {grown_mb:.0f} MB for a 48 MB limit"
    assert grown_mb < input_mb / 2
    assert result["mean"] == pytest.approx(float(frame.mean()), abs=1.0)


def write_darks(folder: Path, n: int = 6) -> list[str]:
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        p = folder / f"dark_{i}.fits"
        data = rng.normal(500, 8, (16, 20)).astype(np.uint16)
        fits.PrimaryHDU(data, fits.Header({"IMAGETYP": "Dark Frame", "EXPTIME": 30.0})).writeto(p)
        paths.append(str(p))
    return paths


def test_cli_stack_writes_master(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_darks(tmp_path)
    out = tmp_path / "master.fits"
    code = main(
        [
            "stack",
            *paths,
            "-o",
            str(out),
            "--rejection",
            "sigma",
            "--low",
            "2.5",
            "--json",
            "--rejection-maps",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ncombine"] == 6 and summary["rejection"] == "sigma" and summary["low"] == 2.5
    assert summary["imagetyp"] == "Master Dark"
    hdr = fits.getheader(out)
    assert hdr["BITPIX"] == -32 and hdr["NCOMBINE"] == 6
    assert (tmp_path / "master_rejhigh.fits").exists()


def test_cli_flat_defaults_to_multiplicative(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bias = tmp_path / "bias.fits"
    fits.PrimaryHDU(np.full((16, 20), 500, np.float32), fits.Header({"IMAGETYP": "Master Bias"})).writeto(bias)
    rng = np.random.default_rng(2)
    flats = []
    for i in range(6):
        p = tmp_path / f"flat_{i}.fits"
        data = rng.normal(20000 + 500 * i, 50, (16, 20)).astype(np.uint16)
        fits.PrimaryHDU(data, fits.Header({"IMAGETYP": "Flat Field", "EXPTIME": 2.0})).writeto(p)
        flats.append(str(p))
    out = tmp_path / "f.fits"
    assert main(["stack", *flats, "-o", str(out), "--type", "flat", "--bias", str(bias), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["normalize"] == "multiplicative"
    assert fits.getheader(out)["IMAGETYP"].lower().startswith("master flat")


def test_cli_flat_without_calibration_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_darks(tmp_path)
    assert main(["stack", *paths, "-o", str(tmp_path / "f.fits"), "--type", "flat"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_mismatch_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_darks(tmp_path)
    fits.PrimaryHDU(np.zeros((10, 10), np.uint16)).writeto(tmp_path / "small.fits")
    code = main(["stack", *paths, str(tmp_path / "small.fits"), "-o", str(tmp_path / "m.fits")])
    assert code == 2
    err = capsys.readouterr().err
    assert "small.fits" in err and "Traceback" not in err
    assert not (tmp_path / "m.fits").exists()
