"""Edge cases a user meets: flat stacks, too few frames, blanks, saturation, bad or mismatched files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from agent.errors import ConfigError, CorruptFile, FrameMismatch
from agent.stacking import products
from agent.stacking.combine import DEFAULT_THRESHOLDS, METHODS, MemoryLimitTooSmall, combine
from agent.stacking.frames import UnsupportedFrame
from tests.stack_fixtures import planted_stack, reference_stack

REJECTING = [m for m in METHODS if m not in ("auto", "none")]


def write_frames(folder: Path, cube: np.ndarray, header: dict[str, object] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(cube):
        p = folder / f"frame_{i:03d}.fits"
        fits.PrimaryHDU(frame, fits.Header(header or {})).writeto(p)
        paths.append(p)
    return paths


@pytest.mark.parametrize("method", REJECTING)
def test_all_equal_values_pass_through(method: str) -> None:
    frames = [np.full((6, 8), 1234.0, np.float32) for _ in range(12)]
    master = combine(frames, method=method, rejection_maps=True)
    assert np.all(master.data == 1234.0)
    assert master.rejection_low is not None and master.rejection_low.sum() == 0


@pytest.mark.parametrize(("method", "n"), [("sigma", 2), ("winsorized", 2), ("linearfit", 4), ("gesd", 2)])
def test_below_minimum_frames_is_a_plain_mean(method: str, n: int) -> None:
    cube = planted_stack(n)
    master = combine(list(cube), method=method)
    np.testing.assert_allclose(master.data, cube.astype(np.float64).mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("method", ["sigma", "winsorized", "percentile", "linearfit", "gesd"])
def test_nan_values_are_dropped(method: str) -> None:
    cube = planted_stack(16, seed=2)
    rng = np.random.default_rng(2)
    cube[rng.random(cube.shape) < 0.1] = np.nan
    cube[:, 0, 0] = np.nan  # a pixel blank in every frame
    master = combine(list(cube), method=method)
    expected, _ = reference_stack(cube, method, *DEFAULT_THRESHOLDS[method])
    assert np.isnan(master.data[0, 0])
    np.testing.assert_allclose(master.data, expected, rtol=1e-5)


def test_saturated_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    cube = np.clip(rng.normal(2000, 15, (12, 10, 12)), 0, 65535).astype(np.uint16)
    cube[:, 3, 3] = 65535  # saturated in every frame: stays saturated
    cube[5, 6, 6] = 65535  # saturated once: rejected
    master = combine(write_frames(tmp_path, cube), method="winsorized")
    assert master.data[3, 3] == 65535.0
    assert abs(master.data[6, 6] - 2000) < 30


def test_fits_uint16_int16_float32_agree(tmp_path: Path) -> None:
    cube = np.clip(np.rint(planted_stack(10, seed=8)), 0, 30000)
    u16 = write_frames(tmp_path / "u16", cube.astype(np.uint16))
    i16 = write_frames(tmp_path / "i16", cube.astype(np.int16))
    f32 = write_frames(tmp_path / "f32", cube.astype(np.float32))
    assert fits.getheader(u16[0])["BZERO"] == 32768
    expected, _ = reference_stack(cube, "sigma", 3.0, 3.0)
    for paths in (u16, i16, f32):
        np.testing.assert_allclose(combine(paths, method="sigma").data, expected, rtol=1e-6)
    for arrays in (
        list(cube.astype(np.uint16)),
        list(cube.astype(np.int16)),
        list(cube.astype(np.uint8 if cube.max() < 256 else np.int32)),
    ):
        np.testing.assert_allclose(combine(arrays, method="sigma").data, expected, rtol=1e-6)


def test_bands_give_the_same_master_as_one_pass() -> None:
    cube = planted_stack(10, rows=40, cols=24, seed=9)
    whole = combine(list(cube), method="winsorized").data
    banded = combine(list(cube), method="winsorized", band_rows=3).data
    np.testing.assert_array_equal(whole, banded)


def test_multiplicative_normalisation_matches_reference() -> None:
    rng = np.random.default_rng(12)
    base = 20000.0 * (1 - 0.2 * np.linspace(-1, 1, 24)[None, :] ** 2) + np.zeros((16, 24))
    gains = np.array([1.0, 0.9, 1.1, 1.05, 0.95, 1.2, 0.8, 1.0])
    cube = np.stack([g * base + rng.normal(0, 50, base.shape) for g in gains]).astype(np.float32)
    cube[3, 5, 5] += 9000  # a cosmic ray
    master = combine(list(cube), method="winsorized", normalize="multiplicative")
    med = np.median(cube.reshape(len(cube), -1).astype(np.float64), axis=1)
    scaled = cube * (med[0] / med)[:, None, None]
    expected, _ = reference_stack(scaled, "winsorized", 3.0, 3.0)
    np.testing.assert_allclose(master.data, expected, rtol=1e-5)
    assert [f.norm_factor for f in master.frames] == pytest.approx(list(med[0] / med))
    assert master.header["NORMALIZ"] == "multiplicative"


def test_additive_scale_normalisation_matches_reference() -> None:
    rng = np.random.default_rng(13)
    cube = np.stack(
        [
            o + s * rng.normal(0, 10, (16, 20))
            for o, s in [(100, 1), (130, 1.5), (90, 0.7), (110, 1.2), (105, 1)]
        ]
    )
    master = combine(list(cube), method="sigma", normalize="additive-scale")
    flat = cube.reshape(len(cube), -1)
    loc = np.median(flat, axis=1)
    scale = 1.4826 * np.median(np.abs(flat - loc[:, None]), axis=1)
    normed = (cube - loc[:, None, None]) * (scale[0] / scale)[:, None, None] + loc[0]
    expected, _ = reference_stack(normed, "sigma", 3.0, 3.0)
    np.testing.assert_allclose(master.data, expected, rtol=1e-5)


def test_size_mismatch_names_the_file(tmp_path: Path) -> None:
    paths = write_frames(tmp_path, np.zeros((3, 8, 8), np.uint16))
    fits.PrimaryHDU(np.zeros((8, 9), np.uint16)).writeto(tmp_path / "odd.fits")
    with pytest.raises(FrameMismatch, match="odd.fits.*size 9x8"):
        combine([*paths, tmp_path / "odd.fits"])


def test_depth_mismatch_names_the_file(tmp_path: Path) -> None:
    paths = write_frames(tmp_path, np.zeros((3, 8, 8), np.uint16))
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(tmp_path / "float.fits")
    with pytest.raises(FrameMismatch, match="float.fits.*bit depth float32"):
        combine([*paths, tmp_path / "float.fits"])


def test_binning_mismatch_names_the_file(tmp_path: Path) -> None:
    paths = write_frames(tmp_path, np.zeros((3, 8, 8), np.uint16), {"XBINNING": 1, "YBINNING": 1})
    fits.PrimaryHDU(np.zeros((8, 8), np.uint16), fits.Header({"XBINNING": 2, "YBINNING": 2})).writeto(
        tmp_path / "bin2.fits"
    )
    with pytest.raises(FrameMismatch, match="bin2.fits.*binning 2x2"):
        combine([*paths, tmp_path / "bin2.fits"])


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    paths = write_frames(tmp_path, np.zeros((3, 8, 8), np.uint16))
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"this is not a FITS file" * 200)
    with pytest.raises(CorruptFile, match="junk.fits"):
        combine([*paths, junk])
    data = np.zeros((400, 400), np.uint16)
    fits.PrimaryHDU(data).writeto(tmp_path / "cut.fits")
    raw = (tmp_path / "cut.fits").read_bytes()
    (tmp_path / "cut.fits").write_bytes(raw[: len(raw) // 2])
    big = write_frames(tmp_path / "big", np.zeros((2, 400, 400), np.uint16))
    with pytest.raises(CorruptFile, match="cut.fits"):
        combine([*big, tmp_path / "cut.fits"])


def test_colour_cube_is_refused(tmp_path: Path) -> None:
    fits.PrimaryHDU(np.zeros((3, 8, 8), np.uint16)).writeto(tmp_path / "rgb.fits")
    with pytest.raises(UnsupportedFrame, match="rgb.fits"):
        combine([tmp_path / "rgb.fits"] * 3)


def test_bad_options() -> None:
    frames = [np.zeros((4, 4), np.float32)] * 3
    with pytest.raises(ConfigError):
        combine(frames, method="kappa")
    with pytest.raises(ConfigError):
        combine(frames, method="gesd", low=3, high=3)
    with pytest.raises(ConfigError):
        combine([])
    with pytest.raises(MemoryLimitTooSmall, match="use at least"):
        combine([np.zeros((4000, 4000), np.uint16)] * 3, mem_limit_mb=1)


def test_master_file_is_float32_with_provenance(tmp_path: Path) -> None:
    cube = np.clip(np.rint(planted_stack(8, seed=1)), 0, 65535).astype(np.uint16)
    paths = write_frames(
        tmp_path, cube, {"IMAGETYP": "Dark Frame", "EXPTIME": 60.0, "GAIN": 100, "XBINNING": 1}
    )
    extra = fits.Header({"OBSRECIP": "test"})
    master = combine(paths, method="sigma", rejection_maps=True, header=extra)
    out = master.write(tmp_path / "out" / "master_dark.fits")
    with fits.open(out) as hdul:
        data = hdul[0].data
        hdr = hdul[0].header
    assert data.dtype == np.dtype(">f4") and data.shape == cube.shape[1:]
    assert hdr["ADUSCALE"] == 65535.0  # the products' form: ADU / 65535, read back in ADU
    np.testing.assert_allclose(products.read_product(out)[0], master.data, rtol=2e-7)
    assert hdr["IMAGETYP"] == "Master Dark"
    assert hdr["NCOMBINE"] == 8 and hdr["REJECT"] == "sigma" and hdr["COMBINE"] == "mean"
    assert hdr["EXPTIME"] == 60.0 and hdr["GAIN"] == 100 and hdr["OBSRECIP"] == "test"
    assert len(hdr["SRCHASH"]) == 64 and hdr["SWVERS"].startswith("obsagent") and "DATE" in hdr
    assert (tmp_path / "out" / "master_dark_rejlow.fits").exists()
    assert combine(paths, method="sigma").header["SRCHASH"] == hdr["SRCHASH"]
    assert combine(paths[::-1], method="sigma").header["SRCHASH"] != hdr["SRCHASH"]


def test_a_stack_killed_mid_write_leaves_no_part_file_after_the_next_run(tmp_path: Path) -> None:
    """kill -9 during the write of the master, then the same command again: no `.part` remains."""
    import signal
    import subprocess
    import sys
    import time

    from agent.fitsfile import write_fits_atomic

    inputs = []
    for i in range(5):
        inputs.append(write_fits_atomic(tmp_path / f"d{i}.fits", np.full((64, 48), 1000 + i, np.uint16)))
    out = tmp_path / "master.fits"
    # a writer that is killed after it opened its temporary file, as a stack killed mid-write is
    code = (
        "import os, sys, time\n"
        "from agent.fitsfile import atomic_output\n"
        "with atomic_output(sys.argv[1]) as fh:\n"
        "    fh.write(b'half a master'); fh.flush(); print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert list(tmp_path.glob(".master.fits.*.part")), "the killed writer left its part file"
    time.sleep(0.05)
    run = subprocess.run(
        [sys.executable, "-m", "agent.cli", "stack", *map(str, inputs), "-o", str(out), "--rejection", "none"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert out.is_file()
    assert not list(tmp_path.glob(".*.part"))
