"""Ingest: header dialects, quarantine, idempotence, grouping, schema migrations."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from library_fixtures import (
    asiair_header,
    asiair_name,
    ekos_header,
    nina_header,
    sharpcap_header,
    write_frame,
    write_series,
)

from agent.fitsfile import write_fits_atomic
from agent.library.keys import FrameType, LibraryPolicy, SensorKind
from agent.library.migrations import MIGRATIONS
from agent.library.store import Library


def _frame(lib: Library, frame_id: int | None) -> dict[str, object]:
    assert frame_id is not None
    return dict(lib.conn.execute("SELECT * FROM frames WHERE id = ?", (frame_id,)).fetchone())


def test_nina_dark_is_keyed_with_gain_offset_setpoint_and_rounded_exposure(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "in" / "dark.fits", nina_header("dark", 59.6, readout="High Gain"))
    with Library(tmp_path / "data") as lib:
        r = lib.ingest_file(path)
        assert r.status == "added"
        f = _frame(lib, r.frame_id)
    assert (f["frame_type"], f["camera"], f["gain"], f["offset"]) == ("dark", "ZWO ASI294MC Pro", 120.0, 30.0)
    assert (f["width"], f["height"], f["binning"], f["bit_depth"]) == (32, 24, "1x1", 16)
    assert f["readout_mode"] == "High Gain"
    assert f["exposure_key"] == 60.0 and f["exposure"] == 59.6
    # keyed by the temperature the sensor had; the set-point is only what it asked for
    assert f["temperature"] == -9.9 and f["set_temp"] == -10.0 and f["filter"] is None
    assert f["dialect"] == "nina" and f["sensor_kind"] == "cmos" and f["state"] == "accumulating"


def test_ekos_spellings_of_every_frame_type(tmp_path: Path) -> None:
    expected = {"light": "light", "dark": "dark", "flat": "flat", "bias": "bias"}
    with Library(tmp_path / "data") as lib:
        for i, kind in enumerate(expected):
            p = write_frame(tmp_path / f"e{i}.fits", ekos_header(kind, 1.0, filt="Ha"), seed=i)
            f = _frame(lib, lib.ingest_file(p).frame_id)
            assert f["frame_type"] == expected[kind]
            assert f["dialect"] == "ekos"
            assert f["temperature"] == -10.0  # CCD-TEMP when no set-point is written
            assert f["filter"] == ("Ha" if kind in ("light", "flat") else None)


def test_sharpcap_without_imagetyp_takes_type_from_folder_and_says_so(tmp_path: Path) -> None:
    p = write_frame(tmp_path / "Darks" / "Capture_00001.fits", sharpcap_header(2.0))
    q = write_frame(tmp_path / "misc" / "Capture_00002.fits", sharpcap_header(2.0), seed=1)
    with Library(tmp_path / "data") as lib:
        f = _frame(lib, lib.ingest_file(p).frame_id)
        assert f["frame_type"] == "dark" and f["dialect"] == "sharpcap"
        assert "frame type from file name" in str(f["quality_flags"])
        r = lib.ingest_file(q)
        assert r.status == "quarantined" and "--type" in str(r.reason)
        # The user names the type; the quarantined file is keyed on re-ingest.
        assert lib.ingest_file(q).status == "quarantined"
        again = lib.ingest_file(q, frame_type=FrameType.DARK)
        assert again.status == "updated" and _frame(lib, again.frame_id)["frame_type"] == "dark"


def test_asiair_file_name_and_header(tmp_path: Path) -> None:
    p = write_frame(tmp_path / "Autorun" / asiair_name("flat", 1.5, 1), asiair_header("flat", 1.5))
    with Library(tmp_path / "data") as lib:
        f = _frame(lib, lib.ingest_file(p).frame_id)
    assert (f["frame_type"], f["camera"], f["dialect"]) == ("flat", "ZWO ASI2600MC Pro", "asiair")


def test_own_capture_header_with_dark_flat(tmp_path: Path) -> None:
    h = fits.Header()
    for k, v in {
        "IMAGETYP": "Dark Flat", "FRAMETYP": "darkflat", "EXPTIME": 0.25, "DATE-OBS": "2024-03-01T20:00:00.000",
        "CCD-TEMP": -9.9, "SET-TEMP": -10.0, "GAIN": 100, "OFFSET": 10, "XBINNING": 2, "YBINNING": 2,
        "INSTRUME": "obsagent sim camera", "READOUTM": "Normal",
    }.items():  # fmt: skip
        h[k] = v
    p = write_frame(tmp_path / "df.fits", h)
    with Library(tmp_path / "data") as lib:
        f = _frame(lib, lib.ingest_file(p).frame_id)
    assert (f["frame_type"], f["binning"], f["exposure_key"], f["readout_mode"]) == (
        "darkflat",
        "2x2",
        0.25,
        "Normal",
    )


def test_unreadable_files_are_quarantined_with_reason_and_ingest_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a_truncated.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    (src / "b_text.fit").write_text("hello")
    no_camera = nina_header("dark", 10)
    del no_camera["INSTRUME"]
    write_frame(src / "c_nocamera.fits", no_camera)
    master = nina_header("dark", 10)
    master["IMAGETYP"] = "Master Dark"
    write_frame(src / "d_master.fits", master)
    write_frame(src / "e_good.fits", nina_header("dark", 10))
    with Library(tmp_path / "data") as lib:
        results = lib.ingest_paths([src])
        by_name = {Path(r.path).name: r for r in results}
        assert [by_name[n].status for n in sorted(by_name)] == ["quarantined"] * 3 + ["skipped", "added"]
        assert "not a readable FITS" in str(by_name["b_text.fit"].reason)
        assert "INSTRUME" in str(by_name["c_nocamera.fits"].reason)
        assert "a master" in str(by_name["d_master.fits"].reason)  # skipped: no row, never a raw frame
        assert len(lib.frames(state="quarantined")) == 3


def test_reingest_is_idempotent_and_copies_are_duplicates(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "in", "dark", [nina_header("dark", 30) for _ in range(3)])
    with Library(tmp_path / "data") as lib:
        assert {r.status for r in lib.ingest_paths([tmp_path / "in"])} == {"added"}
        assert {r.status for r in lib.ingest_paths([tmp_path / "in"])} == {"unchanged"}
        copy = tmp_path / "copy.fits"
        copy.write_bytes(paths[0].read_bytes())
        assert lib.ingest_file(copy).status == "duplicate"
        assert lib.conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 3


def test_temperature_bands_and_exact_keys_split_groups(tmp_path: Path) -> None:
    headers = (
        [nina_header("dark", 60, set_temp=-10.0) for _ in range(3)]
        + [nina_header("dark", 60, set_temp=-10.5) for _ in range(2)]  # inside ±1 of -10
        + [nina_header("dark", 60, set_temp=-12.0) for _ in range(2)]  # outside
        + [nina_header("dark", 60, offset=50) for _ in range(2)]  # offset differs
        + [nina_header("dark", 120) for _ in range(1)]  # exposure differs
    )
    write_series(tmp_path / "in", "d", headers)
    with Library(tmp_path / "data") as lib:
        lib.ingest_paths([tmp_path / "in"])
        groups = sorted(
            (g.key.offset, g.key.exposure_key, g.key.temperature, g.count)
            for g in lib.groups(LibraryPolicy())
        )
        # grouped by the sensor temperature (each set-point + 0.1 °C here), not the set-point
        assert groups == [
            (30.0, 60.0, -11.9, 2),
            (30.0, 60.0, -9.9, 5),
            (30.0, 120.0, -9.9, 1),
            (50.0, 60.0, -9.9, 2),
        ]
        wide = LibraryPolicy(temperature_tolerance=2.0)
        assert sorted(g.count for g in lib.groups(wide)) == [1, 2, 7]


def test_camera_kind_is_recorded_and_applies_to_its_frames(tmp_path: Path) -> None:
    write_series(tmp_path / "in", "d", [nina_header("dark", 60) for _ in range(2)])
    with Library(tmp_path / "data") as lib:
        lib.ingest_paths([tmp_path / "in"])
        assert lib.camera_kind("ZWO ASI294MC Pro") is SensorKind.CMOS
        assert lib.set_camera_kind("ZWO ASI294MC Pro", SensorKind.CCD) == 2
        assert {g.key.sensor_kind for g in lib.groups(LibraryPolicy())} == {SensorKind.CCD}


def test_schema_is_versioned_and_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    with Library(tmp_path) as lib:
        assert lib.schema_version == MIGRATIONS[-1][0]
        assert lib.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Library(tmp_path) as lib:
        rows = lib.conn.execute("SELECT version FROM schema_version").fetchall()
    assert [r[0] for r in rows] == [m[0] for m in MIGRATIONS]
    assert (
        sqlite3.connect(tmp_path / "library.sqlite").execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 0
    )


def test_frames_from_capture_are_written_then_recorded(tmp_path: Path) -> None:
    data = np.full((24, 32), 1000, dtype=np.uint16)
    with Library(tmp_path) as lib:
        r = lib.add_frame(data, nina_header("bias", 0.0), "bias_0001.fits")
        assert r.status == "added" and Path(r.path).is_file()
        assert lib.orphans() == []
        # A file our capture wrote whose row never got committed is an orphan for the sweep.
        write_fits_atomic(lib.frames_dir / "2024-01-01" / "bias_0002.fits", data, nina_header("bias", 0.0))
        assert [p.name for p in lib.orphans()] == ["bias_0002.fits"]


def test_ingest_names_each_refused_file_once_on_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from agent.cli import main

    src = tmp_path / "a folder with a long name, as nights on a NAS often have" / "2026-03-14"
    src.mkdir(parents=True)
    (src / "b_text.fit").write_text("hello")
    master = nina_header("dark", 10)
    master["IMAGETYP"] = "Master Dark"
    write_frame(src / "d_master.fits", master)
    data = str(tmp_path / "data")
    capsys.readouterr()
    assert main(["library", "ingest", str(src), "--data", data, "--no-build"]) == 0
    out = capsys.readouterr().out
    for name, status in (("b_text.fit", "quarantined"), ("d_master.fits", "skipped")):
        path = str(src / name)
        assert out.count(path) == 1, out
        [line] = [ln for ln in out.splitlines() if path in ln]
        assert line.startswith(f"{status} {path}: ") and line.endswith(("remove it", "PATH`")), out
    assert main(["library", "ingest", str(src), "--data", data, "--no-build", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main(["library", "frames", "--state", "quarantined", "--data", data, "--json"]) == 0
    frames = json.loads(capsys.readouterr().out)
    reasons = [r["reason"] for r in listed["quarantined"] + listed["skipped"]] + [f["reason"] for f in frames]
    assert len(reasons) == 3 and not [r for r in reasons if str(src) in r], reasons
    assert main(["library", "ingest", "--masters", str(src / "b_text.fit"), "--data", data]) == 2
    out = capsys.readouterr().out
    assert out.count(str(src / "b_text.fit")) == 1 and out.startswith("refused "), out


def _flat_with_blank_rows(path: Path, layout: str) -> Path:
    """A signed 16-bit flat (no BZERO) at 30 % of full scale whose upper two thirds are BLANK:
    those rows hold no light at all, so the gate must judge the remaining third."""
    data = np.full((24, 32), 20000, np.int16) + np.arange(32, dtype=np.int16)
    data[8:] = -32768
    header = nina_header("flat", 2.0, filt="L")
    header["BLANK"] = -32768
    if layout == "primary":
        fits.PrimaryHDU(data, header).writeto(path)
    elif layout == "extension":  # keywords in an empty primary, the image in an extension
        image = fits.ImageHDU(data)
        image.header["BLANK"] = -32768
        fits.HDUList([fits.PrimaryHDU(header=header), image]).writeto(path)
    else:  # tile-compressed, as fpack writes it
        compressed = fits.CompImageHDU(data, header, compression_type="RICE_1")
        fits.HDUList([fits.PrimaryHDU(), compressed]).writeto(path)
    return path


@pytest.mark.parametrize("layout", ["primary", "extension", "fz"])
def test_the_gate_leaves_blank_pixels_out_as_the_reader_does(tmp_path: Path, layout: str) -> None:
    from agent.fitsfile import read_image

    (tmp_path / "in").mkdir()
    path = _flat_with_blank_rows(tmp_path / "in" / ("flat.fits.fz" if layout == "fz" else "flat.fits"), layout)
    assert read_image(path).masked == 16 * 32  # the reader masks the BLANK rows, whatever the layout
    with Library(tmp_path / "data") as lib:
        result = lib.ingest_file(path)
    assert result.status == "added", result.reason  # 30 % of full scale: a good flat


def test_the_gate_reads_a_frame_with_a_third_axis_of_one(tmp_path: Path) -> None:
    """NAXIS = 3 with NAXIS3 = 1 is a 2-D frame to the reader: a leaked dark written so is caught."""
    header = nina_header("dark", 60.0)
    data = np.full((1, 24, 32), 30000, np.uint16)
    path = tmp_path / "in" / "dark.fits"
    path.parent.mkdir()
    fits.PrimaryHDU(data, header).writeto(path)
    with Library(tmp_path / "data") as lib:
        result = lib.ingest_file(path)
    assert result.status == "quarantined" and "light-leaked dark" in str(result.reason), result
