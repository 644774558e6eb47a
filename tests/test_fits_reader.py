"""Files other programs write: an image in an extension, fpack (.fz) and gzip (.gz) files, BLANK and
NaN pixels, cubes, a flat of zeros. Each is read the same way by stack, calibrate and ingest; what a
file cannot give is one line naming it and exit 2."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import agent.cli as cli
from agent.fitsfile import UnreadableImage, read_header, read_image
from agent.stacking.frames import open_fits

ROWS, COLS = 16, 24


def camera_header(imagetyp: str, exptime: float = 60.0) -> fits.Header:
    h = fits.Header()
    h["IMAGETYP"] = imagetyp
    h["EXPTIME"] = exptime
    h["INSTRUME"] = "ZWO ASI2600MM Pro"
    h["DATE-OBS"] = "2026-01-10T21:00:00"
    h["GAIN"] = 100
    h["OFFSET"] = 50
    h["CCD-TEMP"] = -10.0
    h["XBINNING"] = 1
    h["YBINNING"] = 1
    return h


def frame(level: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(level, 5.0, (ROWS, COLS)).round().astype(np.uint16)


def in_extension(path: Path, data: np.ndarray, header: fits.Header) -> Path:
    """The layout of many capture programs: keywords in an empty primary, pixels in an IMAGE extension."""
    fits.HDUList([fits.PrimaryHDU(header=header), fits.ImageHDU(data)]).writeto(path)
    return path


def fpacked(path: Path, data: np.ndarray, header: fits.Header) -> Path:
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header, compression_type="RICE_1")]).writeto(path)
    return path


def gzipped(path: Path, data: np.ndarray, header: fits.Header) -> Path:
    fits.PrimaryHDU(data, header).writeto(path)  # astropy gzips by the .gz name
    with open(path, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"
    return path


def master_values(path: Path) -> np.ndarray:
    """A master back in ADU, whichever form it was written in (ADU floats or ADU / ADUSCALE)."""
    with fits.open(path) as hdul:
        return np.asarray(hdul[0].data, np.float64) * float(hdul[0].header.get("ADUSCALE", 1.0))


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("obsagent: error: "), err
    return err[0]


# --- the reader ------------------------------------------------------------------------------


def test_image_in_extension_takes_the_primary_keywords(tmp_path: Path) -> None:
    primary = camera_header("Dark Frame", exptime=30.0)
    image_header = fits.Header()
    image_header["EXPTIME"] = 120.0  # the image's own header wins over the primary's
    data = frame(800, 1)
    path = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(header=primary), fits.ImageHDU(data, image_header)]).writeto(path)
    image = read_image(path)
    assert image.hdu == 1 and image.masked == 0
    np.testing.assert_array_equal(image.data, data)
    assert image.data.dtype == np.uint16
    header = read_header(path)
    assert header["INSTRUME"] == "ZWO ASI2600MM Pro" and header["EXPTIME"] == 120.0
    assert "XTENSION" not in header and header["NAXIS1"] == COLS


@pytest.mark.parametrize("writer", [fpacked, gzipped], ids=["fits.fz", "fits.gz"])
def test_compressed_files_read_like_plain_ones(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    data = frame(1200, 2)
    name = "f.fits.fz" if writer is fpacked else "f.fits.gz"
    path = writer(tmp_path / name, data, camera_header("Light Frame"))
    image = read_image(path)
    np.testing.assert_array_equal(image.data, data)
    assert image.header["INSTRUME"] == "ZWO ASI2600MM Pro"
    source = open_fits(path)  # the stacker: decompressed into memory, read by rows like a file
    out = np.empty((3, COLS), source.stored_dtype)
    source.read_rows(5, 8, out)
    np.testing.assert_array_equal(out.astype(np.int64) + 32768, data[5:8])


def test_blank_pixels_are_masked_not_zero(tmp_path: Path) -> None:
    data = frame(900, 3)
    data[2, 3] = 0  # stored -32768 with BZERO 32768: the BLANK value
    hdu = fits.PrimaryHDU(data, camera_header("Dark Frame"))
    hdu.header["BLANK"] = -32768
    hdu.writeto(tmp_path / "blank.fits")
    image = read_image(tmp_path / "blank.fits")
    assert image.masked == 1
    assert np.isnan(image.data[2, 3]) and np.isfinite(np.delete(image.data.ravel(), 2 * COLS + 3)).all()
    assert "BLANK" not in image.header  # masked pixels are NaN now


def test_nan_and_inf_are_masked_and_counted(tmp_path: Path) -> None:
    data = frame(900, 4).astype(np.float32)
    data[0, :3] = [np.nan, np.inf, -np.inf]
    fits.PrimaryHDU(data).writeto(tmp_path / "f.fits")
    image = read_image(tmp_path / "f.fits")
    assert image.masked == 3 and np.isnan(image.data[0, :3]).all()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: fits.PrimaryHDU(np.full((ROWS, COLS), np.nan, np.float32)).writeto(p), "every pixel is masked"),
        (lambda p: fits.PrimaryHDU(np.zeros((3, ROWS, COLS), np.uint16)).writeto(p), "cube"),
        (lambda p: fits.PrimaryHDU().writeto(p), "no image"),
        (lambda p: p.write_text("SIMPLE = not really"), "not a readable FITS file"),
    ],
    ids=["all-nan", "cube", "empty", "junk"],
)
def test_unusable_files_are_one_error_naming_them(tmp_path: Path, make, words: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.fits"
    make(path)
    with pytest.raises(UnreadableImage, match=words) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_cube_is_read_where_asked_for(tmp_path: Path) -> None:
    fits.PrimaryHDU(np.zeros((3, ROWS, COLS), np.uint16)).writeto(tmp_path / "rgb.fits")
    assert read_image(tmp_path / "rgb.fits", allow_cube=True).data.shape == (3, ROWS, COLS)
    fits.PrimaryHDU(np.ones((1, ROWS, COLS), np.uint16)).writeto(tmp_path / "one.fits")
    assert read_image(tmp_path / "one.fits").data.shape == (ROWS, COLS)  # a plane of one is a frame


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "f.fits"
    fits.PrimaryHDU(np.random.default_rng(5).integers(0, 65535, (64, 64)).astype(np.uint16)).writeto(plain)
    packed = gzip.compress(plain.read_bytes())
    (tmp_path / "cut.fits.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(UnreadableImage, match="cut.fits.gz"):
        read_image(tmp_path / "cut.fits.gz")


# --- obsagent stack ----------------------------------------------------------------------------


def test_stack_mixes_extension_fz_gz_and_plain_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = [frame(1000 + 10 * i, 10 + i) for i in range(4)]
    header = camera_header("Dark Frame")
    paths = [
        tmp_path / "plain.fits",
        in_extension(tmp_path / "ext.fits", frames[1], header),
        fpacked(tmp_path / "c.fits.fz", frames[2], header),
        gzipped(tmp_path / "g.fit.gz", frames[3], header),
    ]
    fits.PrimaryHDU(frames[0], header).writeto(paths[0])
    out = tmp_path / "master.fits"
    code = cli.main(["stack", *map(str, paths), "-o", str(out), "--rejection", "none", "--json"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["ncombine"] == 4 and [f["masked"] for f in summary["frames"]] == [0, 0, 0, 0]
    expected = np.mean(np.stack(frames).astype(np.float64), axis=0)
    np.testing.assert_allclose(master_values(out), expected, atol=0.02)


def test_stack_leaves_blank_and_nan_pixels_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = [frame(1000, 20 + i) for i in range(3)]
    paths = []
    for i, data in enumerate(frames):
        hdu = fits.PrimaryHDU(data.copy(), camera_header("Dark Frame"))
        if i == 1:
            hdu.data[4, 5] = 0  # BLANK: read as 0 ADU, it would drag this pixel's mean down by a third
            hdu.header["BLANK"] = -32768
        paths.append(tmp_path / f"d{i}.fits")
        hdu.writeto(paths[-1])
    out = tmp_path / "master.fits"
    code = cli.main(["stack", *map(str, paths), "-o", str(out), "--rejection", "none", "--json"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert [f["masked"] for f in summary["frames"]] == [0, 1, 0]
    master = master_values(out)
    assert master[4, 5] == pytest.approx((float(frames[0][4, 5]) + float(frames[2][4, 5])) / 2, abs=0.02)
    others = np.ones(master.shape, bool)
    others[4, 5] = False
    np.testing.assert_allclose(master[others], np.mean(np.stack(frames), axis=0)[others], atol=0.02)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (lambda p: fits.PrimaryHDU(np.full((ROWS, COLS), np.nan, np.float32)).writeto(p), "every pixel is masked"),
        (lambda p: fits.PrimaryHDU(np.zeros((3, ROWS, COLS), np.uint16)).writeto(p), "cube"),
    ],
    ids=["all-nan", "cube"],
)
def test_stack_refuses_an_unusable_frame_in_one_line(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad, words: str
) -> None:
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"d{i}.fits")
        fits.PrimaryHDU(frame(900, 30 + i), camera_header("Dark Frame")).writeto(paths[-1])
    bad(tmp_path / "bad.fits")
    out = tmp_path / "master.fits"
    assert cli.main(["stack", *map(str, paths), str(tmp_path / "bad.fits"), "--type", "dark", "-o", str(out)]) == 2
    line = one_error_line(capsys)
    assert "bad.fits" in line and words in line
    assert not out.exists()


def test_stack_output_respects_the_umask(tmp_path: Path) -> None:
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"d{i}.fits"))
        fits.PrimaryHDU(frame(900, 40 + i), camera_header("Dark Frame")).writeto(paths[-1])
    out = tmp_path / "master.fits"
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "stack", *paths, "-o", str(out)],
        capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0o007),  # noqa: PLW1509
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o660  # 0666 & ~umask, not mkstemp's 0600


# --- obsagent calibrate --------------------------------------------------------------------------


def _master(path: Path, value: np.ndarray | float, imagetyp: str, **keys: object) -> Path:
    header = camera_header(imagetyp)
    for k, v in keys.items():
        header[k] = v
    fits.PrimaryHDU(np.broadcast_to(np.float32(value), (ROWS, COLS)).astype(np.float32), header).writeto(path)
    return path


def test_calibrate_reads_lights_and_masters_of_other_programs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    light = frame(3000, 50)
    light[7, 7] = 0
    header = camera_header("Light Frame")
    lights = [
        in_extension(tmp_path / "ext.fits", light, header),
        fpacked(tmp_path / "m31_001.fits.fz", light, header),
    ]
    blank = fits.PrimaryHDU(light, header)
    blank.header["BLANK"] = -32768  # the pixel at (7, 7) is a blank
    blank.writeto(tmp_path / "blank.fits")
    lights.append(tmp_path / "blank.fits")
    dark = _master(tmp_path / "dark.fits", 500.0, "Master Dark")
    flat_data = np.full((ROWS, COLS), 20000.0, np.float32)
    flat_data[:, : COLS // 2] = 10000.0  # half the field gets half the light
    flat = in_extension(tmp_path / "flat.fits", flat_data, camera_header("Master Flat"))
    out = tmp_path / "out"
    argv = ["calibrate", *map(str, lights), "-o", str(out), "--dark", str(dark), "--flat", str(flat)]
    code = cli.main([*argv, "--no-cosmetic", "--json"])
    assert code == 0, capsys.readouterr().err
    rows = json.loads(capsys.readouterr().out)["lights"]
    assert [Path(r["output"]).name for r in rows] == ["ext_cal.fits", "m31_001_cal.fits", "blank_cal.fits"]
    assert [r["masked"] for r in rows] == [0, 0, 1]
    s0 = flat_data.mean()
    expected = (light.astype(np.float64) - 500.0) * s0 / flat_data
    for r in rows:
        got = master_values(Path(r["output"]))
        keep = np.ones(got.shape, bool)
        keep[7, 7] = False
        np.testing.assert_allclose(got[keep], expected[keep], rtol=1e-5)
    assert np.isnan(master_values(out / "blank_cal.fits")[7, 7])


def test_calibrate_with_a_flat_of_zeros_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fits.PrimaryHDU(frame(3000, 60), camera_header("Light Frame")).writeto(tmp_path / "light.fits")
    flat = _master(tmp_path / "flat.fits", 0.0, "Master Flat", FLATCAL="bias")
    out = tmp_path / "out"
    assert cli.main(["calibrate", str(tmp_path / "light.fits"), "-o", str(out), "--flat", str(flat)]) == 2
    line = one_error_line(capsys)
    assert "flat.fits" in line and "no positive pixel" in line
    assert not list(out.glob("*.fits"))


# --- obsagent library ingest ------------------------------------------------------------------------


def test_ingest_keys_other_programs_files_and_says_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    header = camera_header("Dark Frame")
    in_extension(folder / "dark_ext.fits", frame(800, 70), header)
    fpacked(folder / "dark_c.fits.fz", frame(800, 71), header)
    gzipped(folder / "dark_g.fits.gz", frame(800, 72), header)
    gzipped(folder / "dark_g2.fit.gz", frame(800, 73), header)
    fits.PrimaryHDU(np.full((ROWS, COLS), np.nan, np.float32), header).writeto(folder / "dark_nan.fits")
    fits.PrimaryHDU(np.zeros((3, ROWS, COLS), np.uint16), camera_header("Light Frame")).writeto(folder / "rgb.fits")
    code = cli.main(["library", "ingest", str(folder), "--no-build", "--json", "--data", str(tmp_path / "data")])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["counts"]["added"] == 4  # extension, .fits.fz, .fits.gz, .fit.gz
    refused = {Path(q["path"]).name: q["reason"] for q in result["quarantined"] + result.get("skipped", [])}
    assert set(refused) == {"dark_nan.fits", "rgb.fits"}
    assert "every pixel is masked" in refused["dark_nan.fits"]
    assert "3" in refused["rgb.fits"] and ("cube" in refused["rgb.fits"] or "colour" in refused["rgb.fits"])
