"""Real programs' headers through the real `obsagent library ingest`: each raw frame is read into the
same key fields, each processed file is refused with its reason, masters are imported only on request.

The headers are in tests/data/headers/ (SOURCES.md names where each comes from). Each test builds a
tiny FITS file from one: the header's cards on a small array of its BITPIX and planes.
No real header was found for ASIAIR, PixInsight/WBPP, DWARF 3 or a Seestar sub-frame (see
SOURCES.md); the PixInsight test says its keywords come from descriptions, not a real file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from agent.cli import main
from agent.library.store import Library

HEADERS = Path(__file__).parent / "data" / "headers"
SHAPE = (24, 32)
_STRUCTURE = ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "BZERO", "BSCALE")


def build(name: str, path: Path, level: float, **changes: Any) -> Path:
    """A tiny FITS file with the cards of tests/data/headers/<name> (`changes` set or delete cards)."""
    header = fits.Header.fromstring((HEADERS / name).read_text(), sep="\n")
    bitpix, planes = int(header["BITPIX"]), int(header.get("NAXIS3", 1))
    for key in _STRUCTURE:
        header.remove(key, ignore_missing=True, remove_all=True)
    for key, value in changes.items():
        if value is None:
            header.remove(key, ignore_missing=True)
        else:
            header[key] = value
    shape = SHAPE if planes == 1 else (planes, *SHAPE)
    data = np.full(shape, level, dtype=np.uint16 if bitpix == 16 else np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header).writeto(path)
    return path


def ingest(capsys: pytest.CaptureFixture[str], data: Path, *argv: str) -> dict[str, Any]:
    assert main(["library", "ingest", *argv, "--data", str(data), "--no-build", "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def frames(data: Path) -> dict[str, dict[str, Any]]:
    with Library.open(data) as lib:
        return {Path(str(r["path"])).name: r for r in lib.frames()}


def fields(row: dict[str, Any]) -> tuple[object, ...]:
    return (row["frame_type"], row["camera"], row["exposure"], row["gain"], row["offset"], row["binning"],
            row["filter"], row["temperature"], row["dialect"])  # fmt: skip


def test_each_programs_raw_frame_is_read_into_the_same_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    build("nina.txt", src / "nina.fits", 1000)
    build("sgp.txt", src / "sgp.fits", 1000)
    build("apt.txt", src / "apt.fits", 1000)
    build("sharpcap.txt", src / "lights" / "sharpcap.fits", 1000)  # SharpCap writes no IMAGETYP
    build("dwarf2.txt", src / "lights" / "dwarf2.fits", 1000)  # nor does DWARF II
    build("indi_simulator_dark.txt", src / "indi_dark.fits", 500)
    build("indi_simulator_light.txt", src / "indi_light.fits", 1000)
    out = ingest(capsys, tmp_path / "data", str(src))
    assert out["counts"] == {"added": 7}
    rows = frames(tmp_path / "data")
    assert fields(rows["nina.fits"]) == ("light", "ZWO ASI294MC Pro", 30.0, 120.0, 30.0, "1x1", None, -10.0, "nina")
    # SGP: GAIN is the setting (120), never EGAIN (3.99 e-/ADU); the sensor's -17.5, not the set-point.
    assert fields(rows["sgp.fits"]) == ("light", "ZWO ASI294MC Pro", 30.0, 120.0, 30.0, "1x1", "HaOIII", -17.5, "sgp")
    # APT: EXPTIME only, no OFFSET, no CCD-TEMP: keyed by its set-point.
    assert fields(rows["apt.fits"]) == ("light", "ZWO ASI294MC Pro", 240.0, 120.0, None, "1x1", None, -15.0, "apt")
    assert fields(rows["sharpcap.fits"]) == (
        "light", "ZWO ASI290MM Mini", 2.0, None, None, "1x1", None, 12.7, "sharpcap")  # fmt: skip
    # DWARF II: EXP, BINNING = '2*2', INSTRUME 'DWARFII' -> the built-in name.
    assert fields(rows["dwarf2.fits"]) == ("light", "DWARF II", 15.0, 110.0, None, "2x2", None, None, "dwarf")
    # INDI writes no SET-TEMP and no OFFSET: the dark is keyed by its sensor temperature.
    assert fields(rows["indi_dark.fits"]) == ("dark", "CCD Simulator", 2.0, 90.0, None, "2x2", None, -5.5, "ekos")
    assert rows["indi_dark.fits"]["set_temp"] is None and rows["indi_dark.fits"]["exposure_key"] == 2.0
    assert fields(rows["indi_light.fits"]) == (
        "light", "CCD Simulator", 1.0, 90.0, None, "2x2", "H_Alpha", -10.0, "ekos")  # fmt: skip
    assert "frame type from file name" in rows["sharpcap.fits"]["quality_flags"]


def test_nina_and_indi_names_of_one_camera_share_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    build("nina.txt", src / "nina.fits", 1000)
    # The INDI header as indi-asi names the camera (the driver's device name, not a real file's card).
    build("indi_simulator_light.txt", src / "indi.fits", 1000, INSTRUME="ZWO CCD ASI294MC Pro")
    build("nina.txt", src / "upper.fits", 1000, INSTRUME="ZWO  ASI294MC PRO", **{"DATE-OBS": "2021-03-02T20:20:00"})
    ingest(capsys, tmp_path / "data", str(src))
    rows = frames(tmp_path / "data")
    assert {r["camera"] for r in rows.values()} == {"ZWO ASI294MC Pro"}
    assert "camera 'ZWO CCD ASI294MC Pro' keyed as 'ZWO ASI294MC Pro'" in rows["indi.fits"]["quality_flags"]
    with Library.open(tmp_path / "data") as lib:
        assert [c["name"] for c in lib.cameras()] == ["ZWO ASI294MC Pro"]


def test_the_users_camera_aliases_file_names_the_camera(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "camera_aliases.yaml").write_text("My DWARF:\n  - DWARFII\n")
    build("dwarf2.txt", tmp_path / "in" / "lights" / "d.fits", 1000)
    ingest(capsys, data, str(tmp_path / "in"))
    assert frames(data)["d.fits"]["camera"] == "My DWARF"
    (data / "camera_aliases.yaml").write_text("My DWARF: 3\n")
    assert main(["library", "ingest", str(tmp_path / "in"), "--data", str(data)]) == 2
    assert "give a list of names" in capsys.readouterr().err


def test_processed_files_are_skipped_with_the_reason_and_never_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.stacking.lights import calibrate
    from agent.stacking.masterset import MasterSet

    src = tmp_path / "in"
    build("maxim_calibrated.txt", src / "maxim.fits", 1000)
    build("app_integration.txt", src / "app_stack.fits", 0.01)
    build("app_masterflat.txt", src / "app_flat.fits", 0.5)
    build("seestar_stack.txt", src / "seestar.fits", 1000)
    build("siril_master_dark.txt", src / "darks" / "master_dark.fit", 0.0076)
    raw = build("nina.txt", tmp_path / "raw" / "light.fits", 1500)
    ours = calibrate(raw, MasterSet(dark=np.full(SHAPE, 500, np.float32), flat=np.full(SHAPE, 2e4, np.float32)))
    ours.write(src / "light_c.fits")  # obsagent's own calibrated light
    build("nina.txt", src / "good.fits", 1000)
    data = tmp_path / "data"
    out = ingest(capsys, data, str(src))
    assert out["counts"] == {"added": 1, "skipped": 6}
    reasons = {Path(s["path"]).name: s["reason"] for s in out["skipped"]}
    assert "a calibrated light" in reasons["maxim.fits"] and "CALSTAT 'BDF'" in reasons["maxim.fits"]
    assert "a calibrated light" in reasons["light_c.fits"]
    assert "a stack" in reasons["app_stack.fits"] and "INTEGRAT" in reasons["app_stack.fits"]
    assert "a master" in reasons["app_flat.fits"] and "--masters" in reasons["app_flat.fits"]
    assert "STACKCNT = 187" in reasons["seestar.fits"]
    assert "a master" in reasons["master_dark.fit"] and "STACKCNT = 3" in reasons["master_dark.fit"]
    assert list(frames(data)) == ["good.fits"]
    # the plain output says the same, one line per file
    assert main(["library", "ingest", str(src / "seestar.fits"), "--data", str(data), "--no-build"]) == 0
    text = capsys.readouterr().out
    assert "1 skipped" in text and "skipped" in text.splitlines()[1] and "STACKCNT = 187" in text


def test_a_siril_master_dark_is_imported_in_adu_and_matched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    master = build("siril_master_dark.txt", tmp_path / "in" / "master_dark.fit", 0.0076)
    argv = ["library", "ingest", "--masters", str(master), "--data", str(data), "--json"]
    assert main(argv) == 0
    (result,) = json.loads(capsys.readouterr().out)["masters"]
    assert result["status"] == "imported" and result["scale"] == 65535.0
    key = result["key"]
    assert (key["frame_type"], key["camera"], key["gain"], key["offset"], key["exposure_key"], key["temperature"]) == (
        "dark", "ZWO ASI294MC Pro", 120.0, 30.0, 30.0, -10.0)  # fmt: skip
    assert key["bit_depth"] == 16  # the raw frames', so lights of this camera match it
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["masters"][0]["status"] == "unchanged"
    from agent.stacking.masters import load_master

    with Library.open(data) as lib:
        (m,) = lib.masters()
        assert m.method == "imported" and m.n_sources == 3
        assert float(np.median(load_master(m.path, "dark").data)) == pytest.approx(0.0076 * 65535, rel=1e-4)
    # a NINA light of that camera, gain, offset and temperature finds it
    build("nina.txt", tmp_path / "lights" / "l.fits", 1500)
    ingest(capsys, data, str(tmp_path / "lights"))
    light_id = str(frames(data)["l.fits"]["id"])
    # the Siril master is from 2021: expired, so it is used only when the user allows expired masters
    assert main(["library", "match", light_id, "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["masters"] == {}
    assert main(["library", "match", light_id, "--data", str(data), "--json", "--allow-looser", "expired"]) == 0
    matched = json.loads(capsys.readouterr().out)
    assert matched["masters"] == {"dark": m.id} and not matched["complete"]  # the flat is still missing


def test_app_master_flat_takes_missing_fields_from_set_and_raw_frames_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    flat = build("app_masterflat.txt", tmp_path / "in" / "app_flat.fits", 0.5)
    raw = build("nina.txt", tmp_path / "in" / "raw.fits", 1000)
    argv = ["library", "ingest", "--masters", str(flat), str(raw), "--data", str(data), "--json",
            "--set", "offset=30", "--set", "temperature=-10", "--set", "filter=HaOIII"]  # fmt: skip
    assert main(argv) == 0
    got = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)["masters"]}
    assert got["raw.fits"]["status"] == "refused" and "no sign of a master" in got["raw.fits"]["reason"]
    key = got["app_flat.fits"]["key"]
    assert (key["frame_type"], key["gain"], key["offset"], key["filter"], key["temperature"]) == (
        "flat", 120.0, 30.0, "HaOIII", -10.0)  # fmt: skip
    assert main(["library", "ingest", str(raw), "--set", "gain=1", "--data", str(data)]) == 2
    assert "--set is for --masters only" in capsys.readouterr().err


def test_pixinsight_master_keywords_as_described_are_refused_as_raw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a real header (none was found): IMAGETYP 'Master Light' and the HISTORY line
    'ImageIntegration.numberOfImages: N' as second-hand descriptions of WBPP masters give them."""
    h = fits.Header()
    h["IMAGETYP"] = "Master Dark"
    h["INSTRUME"] = "ZWO ASI071MC Pro"
    h["EXPTIME"] = 300.0
    h.add_history("ImageIntegration.numberOfImages: 10")
    fits.PrimaryHDU(np.full(SHAPE, 0.01, np.float32), h).writeto(tmp_path / "masterDark.fits")
    h2 = fits.Header()
    h2["INSTRUME"] = "ZWO ASI071MC Pro"
    h2["EXPTIME"] = 300.0
    h2["IMAGETYP"] = "LIGHT"
    h2.add_history("ImageIntegration.numberOfImages: 10")
    fits.PrimaryHDU(np.full(SHAPE, 0.01, np.float32), h2).writeto(tmp_path / "integration.fits")
    out = ingest(capsys, tmp_path / "data", str(tmp_path / "masterDark.fits"), str(tmp_path / "integration.fits"))
    reasons = {Path(s["path"]).name: s["reason"] for s in out["skipped"]}
    assert "a master" in reasons["masterDark.fits"] and "IMAGETYP 'Master Dark'" in reasons["masterDark.fits"]
    assert "a stack" in reasons["integration.fits"] and "numberOfImages: 10" in reasons["integration.fits"]
