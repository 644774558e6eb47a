"""Real programs' headers through the real `obsagent library ingest`: each raw frame is read into the
same key fields, each processed file is refused with its reason, masters are imported only on request.

The headers are in tests/data/headers/ (SOURCES.md names where each comes from). Each test builds a
tiny FITS file from one: the header's cards on a small array of its BITPIX and planes.
No real header was found for ASIAIR, DWARF 3 or a raw (Bayer, one-plane) Seestar sub-frame (see
SOURCES.md).
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


def build(name: str, path: Path, level: float, planes: int | None = None, **changes: Any) -> Path:
    """A tiny FITS file with the cards of tests/data/headers/<name> (`changes` set or delete cards;
    `planes` overrides the header's NAXIS3)."""
    header = fits.Header.fromstring((HEADERS / name).read_text(), sep="\n")
    bitpix = int(header.get("BITPIX", -32))  # PixInsight keyword lists have none: its masters are float
    planes = planes if planes is not None else int(header.get("NAXIS3", 1))
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
    # The INDI header with the camera named as indi-asi names it: 'ZWO CCD <model>', the form of the
    # INSTRUME card of a real indi-asi capture (siril_stack_of_indi_asi.txt), here for the 294MC.
    indi_asi = str(fits.Header.fromstring((HEADERS / "siril_stack_of_indi_asi.txt").read_text(), sep="\n")["INSTRUME"])
    assert indi_asi == "ZWO CCD ASI2600MM Pro"
    build("indi_simulator_light.txt", src / "indi.fits", 1000, INSTRUME=indi_asi.replace("2600MM", "294MC"))
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


def test_pixinsight_masters_are_refused_as_raw_and_the_dark_imports_with_its_exposure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real PixInsight headers: a WBPP 2.5.9 master light (IMAGETYP 'Master Light') and an
    ImageIntegration master dark of PixInsight 1.8.8, which says IMAGETYP 'DARK', gives its count only
    in HISTORY and has no EXPTIME (nor GAIN: EGAIN is e-/ADU)."""
    src = tmp_path / "in"
    build("pixinsight_master_light.txt", src / "masterLight.fits", 0.01)
    dark = build("pixinsight_master_dark.txt", src / "darks" / "master_dark.fits", 0.0103)
    data = tmp_path / "data"
    out = ingest(capsys, data, str(src))
    assert out["counts"] == {"skipped": 2}
    reasons = {Path(s["path"]).name: s["reason"] for s in out["skipped"]}
    assert "a stack" in reasons["masterLight.fits"] and "IMAGETYP 'Master Light'" in reasons["masterLight.fits"]
    assert "a master" in reasons["master_dark.fits"] and "numberOfImages: 240" in reasons["master_dark.fits"]
    argv = ["library", "ingest", "--masters", str(dark), "--data", str(data), "--json"]
    assert main(argv) == 2  # nothing imported
    (refused,) = json.loads(capsys.readouterr().out)["masters"]
    assert refused["status"] == "refused" and "--set exposure=SECONDS" in refused["reason"]
    assert main([*argv, "--set", "exposure=120", "--set", "gain=120", "--set", "temperature=-10"]) == 0
    (imported,) = json.loads(capsys.readouterr().out)["masters"]
    assert imported["status"] == "imported" and imported["scale"] == 65535.0
    key = imported["key"]
    assert (key["frame_type"], key["camera"], key["exposure_key"], key["gain"], key["binning"]) == (
        "dark", "ZWO ASI183MC Pro", 120.0, 120.0, "1x1")  # fmt: skip
    with Library.open(data) as lib:
        (m,) = lib.masters()
        assert m.n_sources == 240 and m.stats["writer"] == "pixinsight"  # named only in COMMENT/HISTORY


def test_an_indi_camera_driver_light_with_frame_only_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real INDI QSI driver light of 2018: FRAME 'Light' and no IMAGETYP, no GAIN, EPERADU (e-/ADU)."""
    build("indi_qsi.txt", tmp_path / "in" / "qsi.fits", 1000)
    out = ingest(capsys, tmp_path / "data", str(tmp_path / "in"))
    assert out["counts"] == {"added": 1}
    row = frames(tmp_path / "data")["qsi.fits"]
    assert fields(row) == ("light", "QSI CCD", 900.0, None, None, "1x1", "Ha", -20.0, "ekos")
    assert "frame type from file name" not in row["quality_flags"]


def test_a_seestar_single_frame_and_a_siril_stack_of_indi_frames_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Seestar S50 (firmware 4.70) single frame is debayered (NAXIS3 = 3, STACKCNT = 1: one frame,
    not a stack); a Siril stack of 126 indi-asi lights keeps their IMAGETYP 'Light Frame'."""
    src = tmp_path / "in"
    build("seestar_single_colour.txt", src / "seestar.fit", 1000)
    build("siril_stack_of_indi_asi.txt", src / "stacked.fit", 0.01)
    out = ingest(capsys, tmp_path / "data", str(src))
    assert out["counts"] == {"skipped": 2}
    reasons = {Path(s["path"]).name: s["reason"] for s in out["skipped"]}
    assert "a colour image" in reasons["seestar.fit"] and "NAXIS3 = 3" in reasons["seestar.fit"]
    assert "a stack" in reasons["stacked.fit"] and "STACKCNT = 126" in reasons["stacked.fit"]
    # The same cards on one plane (the only change; a raw Seestar sub is one Bayer plane) are read
    # like any light: CCDXBIN/XBINNING, EXPTIME, GAIN, CCD-TEMP, INSTRUME 'Seestar S50'.
    build("seestar_single_colour.txt", tmp_path / "one" / "sub.fit", 1000, planes=1)
    ingest(capsys, tmp_path / "data", str(tmp_path / "one"))
    row = frames(tmp_path / "data")["sub.fit"]
    assert row["exposure"] == pytest.approx(0.01)
    assert fields(row)[:2] + fields(row)[3:] == (
        "light", "Seestar S50", 80.0, None, "1x1", "IRCUT", 24.0625, "seestar")  # fmt: skip
