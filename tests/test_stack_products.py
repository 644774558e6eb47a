"""`obsagent stack` reads our own products (calibrated lights, masters: ADU / ADUSCALE) back in ADU,
and writes a master light in the products' form, so Siril reads it as the ADU it holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from agent.cli import main
from agent.stacking import products

ROWS, COLS = 32, 40
BASE = 1000.0
SKY = 500.0


def _header(imagetyp: str, minute: int) -> fits.Header:
    return fits.Header({"IMAGETYP": imagetyp, "EXPTIME": 60.0, "GAIN": 100, "XBINNING": 1, "YBINNING": 1,
                        "CCD-TEMP": -10.0, "DATE-OBS": f"2024-01-01T00:{minute:02d}:00"})  # fmt: skip


def _frames(tmp: Path) -> tuple[list[str], list[str]]:
    """Five darks of one pattern and five lights: that pattern, a sky of SKY ADU and noise."""
    rng = np.random.default_rng(7)
    pattern = BASE + rng.normal(0.0, 6.0, (ROWS, COLS))
    darks, lights = [], []
    for i in range(5):
        d = tmp / f"dark_{i}.fits"
        fits.writeto(d, np.round(pattern + rng.normal(0.0, 2.0, pattern.shape)).astype(np.uint16), _header("Dark Frame", i))
        darks.append(str(d))
        lt = tmp / "lights" / f"light_{i}.fits"
        lt.parent.mkdir(exist_ok=True)
        sky = pattern + SKY + rng.normal(0.0, 10.0, pattern.shape)
        fits.writeto(lt, np.round(sky).astype(np.uint16), _header("Light Frame", 10 + i))
        lights.append(str(lt))
    return darks, lights


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_calibrated_lights_stack_in_adu_into_a_master_light_siril_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    darks, lights = _frames(tmp_path)
    dark = tmp_path / "master_dark.fits"
    _run(capsys, "stack", *darks, "-o", str(dark), "--type", "dark")
    _run(capsys, "calibrate", *lights, "-o", str(tmp_path / "cal"), "--dark", str(dark), "--no-cosmetic")
    calibrated = sorted(str(p) for p in (tmp_path / "cal").glob("*.fits"))
    assert len(calibrated) == 5 and fits.getheader(calibrated[0])["ADUSCALE"] == 65535.0

    out = tmp_path / "master_light.fits"
    summary = _run(capsys, "stack", *calibrated, "-o", str(out), "--type", "light")
    frames = summary["frames"]
    assert isinstance(frames, list)
    for frame in frames:  # each calibrated light is seen in ADU: its sky, not sky / 65535
        assert frame["median"] == pytest.approx(SKY, abs=5.0)

    with fits.open(out) as hdul:  # on disk: the products' form, [0, 1] with the scale recorded
        assert len(hdul) == 1 and hdul[0].header["BITPIX"] == -32
        stored = hdul[0].data.astype(np.float64)
        header = hdul[0].header
    assert header["ADUSCALE"] == 65535.0 and header["IMAGETYP"] == "Master Light"
    assert stored.min() >= 0.0 and stored.max() <= 1.0
    master, _ = products.read_product(out)
    assert float(np.median(master)) == pytest.approx(SKY, abs=3.0)
    expected = np.mean([products.read_product(p)[0] for p in calibrated], axis=0)
    assert float(np.abs(master - expected).mean()) < 3.0  # the stack of the calibrated lights, in ADU

    raw = tmp_path / "raw_master_light.fits"  # raw lights stack in ADU as before, written the same way
    _run(capsys, "stack", *lights, "-o", str(raw), "--type", "light")
    assert float(np.median(products.read_product(raw)[0])) == pytest.approx(BASE + SKY, abs=3.0)
    assert fits.getheader(raw)["ADUSCALE"] == 65535.0

    if shutil.which("siril-cli") is None:
        pytest.skip("siril-cli is not installed: Siril's reading of the master light untested here")
    from tests.test_products_siril import WARNING, _siril

    stats, text, err = _siril(tmp_path, [out.name])
    assert len(stats) == 1, text
    mean, median = stats[0][:2]  # Siril prints float images on its 16-bit scale: ADU here
    assert mean == pytest.approx(float(np.mean(master, dtype=np.float64)), abs=0.06)
    assert median == pytest.approx(float(np.median(master)), abs=0.6)
    assert not [ln for ln in (text + err).splitlines() if WARNING.search(ln)], text + err
