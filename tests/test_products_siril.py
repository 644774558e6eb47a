"""Masters and calibrated lights open in Siril as the ADU data they hold, without warnings.

A small master dark is built and a light calibrated through the CLI; the real `siril-cli` (1.0.6
in Debian) loads both and prints its statistics, which must match ours; our reader gives the ADU
values back, and masters written in the old form (ADU floats, DEFECTS extension) still read.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from agent.stacking import products
from agent.stacking.masters import load_master

SIRIL = shutil.which("siril-cli")
ROWS, COLS = 40, 48
HOT = (7, 11)
BASE = 1000.0
SKY = 500.0
STAT = re.compile(r"Mean: ([-\d.]+), Median: ([-\d.]+), Sigma: ([-\d.]+).*Min: ([-\d.]+), Max: ([-\d.]+)")
WARNING = re.compile(r"warn|error|another image|ignoring|BSCALE|different than|not supported", re.I)


def _header(imagetyp: str, minute: int) -> fits.Header:
    h = fits.Header()
    h["IMAGETYP"] = imagetyp
    h["EXPTIME"] = 60.0
    h["GAIN"] = 100
    h["OFFSET"] = 10
    h["XBINNING"] = 1
    h["YBINNING"] = 1
    h["CCD-TEMP"] = -10.0
    h["DATE-OBS"] = f"2024-01-01T00:{minute:02d}:00"
    return h


def _frames(tmp: Path) -> tuple[list[Path], Path, np.ndarray, np.ndarray]:
    """Five identical darks (so the master is exactly their pattern) with a hot pixel, one light."""
    rng = np.random.default_rng(3)
    dark = np.round(BASE + rng.normal(0.0, 8.0, (ROWS, COLS)))
    dark[HOT] = 4000.0
    darks = []
    for i in range(5):
        p = tmp / f"dark_{i}.fits"
        fits.writeto(p, dark.astype(np.uint16), _header("Dark Frame", i))
        darks.append(p)
    light = np.round(dark + SKY + rng.normal(0.0, 12.0, (ROWS, COLS)))
    h = _header("Light Frame", 30)
    h["FILTER"] = "L"
    fits.writeto(tmp / "light.fits", light.astype(np.uint16), h)
    return darks, tmp / "light.fits", dark, light


def _cli(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def _siril(work: Path, files: list[str]) -> tuple[list[tuple[float, ...]], str, str]:
    """Load and `stat` each file in siril-cli; its statistics (16-bit scale) and its output."""
    home = work / "home"
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    (work / "prime.ssf").write_text("requires 1.0.0\n")  # first run writes Siril's config file
    subprocess.run(
        [SIRIL, "-s", "prime.ssf", "-d", str(work)], cwd=work, env=env, capture_output=True, timeout=60
    )
    script = "requires 1.0.0\n" + "".join(f"load {f}\nstat\n" for f in files)
    (work / "check.ssf").write_text(script)
    proc = subprocess.run(
        [SIRIL, "-s", "check.ssf", "-d", str(work)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stats = [tuple(float(v) for v in m.groups()) for m in STAT.finditer(proc.stdout)]
    return stats, proc.stdout, proc.stderr


@pytest.mark.skipif(SIRIL is None, reason="siril-cli is not installed")
def test_master_dark_and_calibrated_light_read_in_siril_as_our_adu(tmp_path: Path) -> None:
    darks, light_path, dark, light = _frames(tmp_path)
    master_path = tmp_path / "master_dark.fits"
    _cli("stack", *map(str, darks), "-o", str(master_path), "--type", "dark", "--json")
    _cli("calibrate", str(light_path), "-o", str(tmp_path / "cal"), "--dark", str(master_path), "--json")
    cal_path = tmp_path / "cal" / "light_cal.fits"

    # on disk: float32 in [0, 1] with the scale recorded, no second HDU, the defect map beside it
    with fits.open(master_path) as hdul:
        assert len(hdul) == 1 and hdul[0].header["BITPIX"] == -32
        stored = hdul[0].data.astype(np.float64)
        hdr = hdul[0].header
    assert stored.min() >= 0.0 and stored.max() <= 1.0
    assert hdr["ADUSCALE"] == 65535.0 and "DATAMAX" not in hdr and hdr["ADUFULL"] == 65535
    assert hdr["IMAGETYP"] == "Master Dark" and hdr["STACKCNT"] == 5 and hdr["LIVETIME"] == 300.0
    assert hdr["DATE-OBS"].startswith("2024-01-01T00:00:00") and hdr["DATE-END"].startswith(
        "2024-01-01T00:05:00"
    )
    for key, value in (
        ("EXPTIME", 60.0),
        ("GAIN", 100),
        ("OFFSET", 10),
        ("XBINNING", 1),
        ("CCD-TEMP", -10.0),
    ):
        assert hdr[key] == value
    sidecar = products.defects_path(master_path)
    assert sidecar.name == "master_dark.defects.fits"
    assert fits.getdata(sidecar)[HOT] == 1  # hot

    # our reader gives the ADU values back
    md = load_master(master_path, "dark")
    np.testing.assert_allclose(md.data, dark, rtol=2e-7)
    assert md.header["DATAMAX"] == 65535 and "ADUSCALE" not in md.header
    assert md.defects is not None and md.defects[HOT] == 1
    cal, cal_hdr = products.read_product(cal_path)
    good = np.ones(cal.shape, bool)
    good[HOT] = False  # the hot pixel is replaced from its neighbours
    np.testing.assert_allclose(cal[good], (light - dark)[good], atol=2e-4)
    assert abs(float(cal[HOT]) - SKY) < 60.0
    assert cal_hdr["FILTER"] == "L" and cal_hdr["DATAMAX"] == 65535 and cal_hdr["CALSTAT"] == "D"

    # Siril reads both as the same numbers, printed on its 16-bit scale, and says nothing else
    assert SIRIL is not None
    stats, out, err = _siril(tmp_path, [master_path.name, f"cal/{cal_path.name}"])
    assert len(stats) == 2, out
    for (mean, median, sigma, lo, hi), ours in zip(stats, (md.data, cal), strict=True):
        assert mean == pytest.approx(float(np.mean(ours, dtype=np.float64)), abs=0.06)
        assert median == pytest.approx(float(np.median(ours)), abs=0.6)  # Siril's median is binned
        assert sigma == pytest.approx(float(np.std(ours, ddof=1)), abs=0.06)
        assert lo == pytest.approx(float(ours.min()), abs=0.06) and hi == pytest.approx(
            float(ours.max()), abs=0.06
        )
    loads = re.findall(r"Running command: load\n(.*?)(?=Running command:)", out, re.S)
    assert len(loads) == 2
    for block in loads:
        lines = [
            ln for ln in block.splitlines() if ln.strip() not in ("", "log:") and "running command" not in ln
        ]
        assert len(lines) == 1 and lines[0].startswith("log: Reading FITS: file "), block
    assert not [ln for ln in (out + err).splitlines() if WARNING.search(ln)], out + err


def test_old_masters_still_read_in_adu_with_their_defect_extension(tmp_path: Path) -> None:
    """A master written before: ADU float32 with DATAMAX in ADU and its map as a DEFECTS HDU."""
    rng = np.random.default_rng(4)
    data = (BASE + rng.normal(0.0, 5.0, (ROWS, COLS))).astype(np.float32)
    defects = np.zeros((ROWS, COLS), np.uint8)
    defects[HOT] = 1
    hdr = fits.Header({"IMAGETYP": "Master Dark", "DATAMAX": 65535, "EXPTIME": 60.0})
    ext = fits.ImageHDU(defects, fits.Header({"EXTNAME": "DEFECTS"}))
    fits.HDUList([fits.PrimaryHDU(data, hdr), ext]).writeto(tmp_path / "old.fits")
    old = load_master(tmp_path / "old.fits", "dark")
    np.testing.assert_array_equal(old.data, data)
    assert old.header["DATAMAX"] == 65535
    assert old.defects is not None and old.defects[HOT] == 1 and int(old.defects.sum()) == 1


def test_a_map_left_by_another_master_of_that_name_is_not_used(tmp_path: Path) -> None:
    """Rewriting a name without a map removes the old map; a map of other sources is ignored."""
    target = tmp_path / "m.fits"
    header = fits.Header({"SRCHASH": "a" * 64, "DATE": "2024-01-01T00:00:00", "DATAMAX": 65535})
    data = np.full((ROWS, COLS), BASE, np.float32)
    products.write_product(target, data, header)
    products.write_defects(target, np.ones((ROWS, COLS), np.uint8), header)
    assert load_master(target, "dark").defects is not None
    other = header.copy()
    other["SRCHASH"] = "b" * 64
    products.write_product(target, data, other)  # rebuilt from other frames, the old map still there
    assert load_master(target, "dark").defects is None
    products.write_defects(target, None, other)
    assert not products.defects_path(target).exists()
