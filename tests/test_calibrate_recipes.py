"""Master recipes, cosmetic correction, the CLI, and deliberate user mistakes being caught."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from agent.errors import ConfigError
from agent.stacking import cosmetic
from agent.stacking.combine import combine
from agent.stacking.darkopt import first_wavelet_layer, optimize_dark
from agent.stacking.lights import CalibrationOptions, calibrate
from agent.stacking.masters import load_master
from agent.stacking.masterset import MasterSet
from agent.stacking.quality import BitDepthMismatch, SuspectMaster
from agent.stacking.recipes import build_master
from indi_sim.model import SimModel
from tests.calibrate_fixtures import ccd_set, cmos_set, light, render, sim_header, write_frames


def test_master_dark_keeps_its_bias_pedestal_and_stores_defects(tmp_path: Path) -> None:
    cs = cmos_set("imx294")
    pedestal = cs.model.truth().pedestal_adu(cs.model.spec.offset_default)
    assert float(np.median(cs.dark.data)) > pedestal  # nothing subtracted before integration
    assert cs.dark.defects is not None and cs.dark.header["NHOTPIX"] > 0
    path = cs.dark.write(tmp_path / "dark.fits")
    again = load_master(path, "dark")
    assert again.data.dtype == np.float32
    np.testing.assert_array_equal(again.defects, cs.dark.defects)
    assert again.defects is not None
    hp = cs.model.hot_pixels
    bright = hp.dark_e_s > 5.0
    assert (again.defects[hp.y[bright], hp.x[bright]] == cosmetic.HOT).all()


def test_master_flat_records_calibration_and_channel_means() -> None:
    cs = cmos_set("imx294")
    h = cs.flat.header
    assert h["FLATCAL"] == "darkflat" and h["IMAGETYP"] == "Master Flat"
    assert {"FLATMEAN", "FLATMR", "FLATMG", "FLATMB"} <= set(h.keys())
    assert h["FLATMG"] > h["FLATMB"] > h["FLATMR"]  # panel colour response 0.55 / 1 / 0.75


def test_flat_streams_through_files_when_memory_is_short(tmp_path: Path) -> None:
    m = SimModel("small", seed=8, width=512, height=384)
    bias = build_master("bias", render(m, "bias", 5), header=sim_header(m, "bias", 0.0))
    flats = render(m, "flat", 8, 1.0, panel_brightness=100, cap_closed=True)
    in_memory = build_master("flat", flats, bias=bias, header=sim_header(m, "flat", 1.0))
    streamed = build_master("flat", flats, bias=bias, header=sim_header(m, "flat", 1.0), mem_limit_mb=20,
                            workdir=str(tmp_path))
    # the level may differ by the sampled normalisation reference; the flat's shape must not
    np.testing.assert_allclose(streamed.data / streamed.data.mean(), in_memory.data / in_memory.data.mean(), rtol=1e-4)
    assert list(tmp_path.iterdir()) == []  # the calibrated copies are removed


def test_cosmetic_uses_same_cfa_colour_neighbours() -> None:
    img = np.zeros((8, 8), np.float32)
    img[0::2, 0::2] = 100.0  # R
    img[1::2, 1::2] = 10.0  # B, greens stay 0
    img[4, 4] = 5000.0  # a hot red pixel
    defects = np.zeros(img.shape, np.uint8)
    defects[4, 4] = cosmetic.HOT
    assert cosmetic.correct(img, defects, "RGGB") == 1
    assert img[4, 4] == 100.0
    rng = np.random.default_rng(1)
    dark = 1000.0 + rng.normal(0, 3, (32, 32)) + np.tile([[40.0, 0.0], [0.0, 20.0]], (16, 16))
    dark[9, 12] += 200.0
    dark[20, 20] -= 200.0
    found, stats = cosmetic.find_defects(dark, None, "RGGB")
    assert found[9, 12] == cosmetic.HOT and found[20, 20] == cosmetic.COLD
    assert stats.hot == 1 and stats.cold == 1  # the colour pattern itself is not a defect


def test_dark_optimisation_golden_section_matches_least_squares() -> None:
    rng = np.random.default_rng(3)
    thermal = rng.lognormal(3, 0.6, (128, 128))
    light = 0.37 * thermal + rng.normal(100, 5, thermal.shape)
    result = optimize_dark(light, np.zeros_like(light), thermal)
    med = np.median(thermal)
    sel = thermal > med + 3 * 1.4826 * np.median(np.abs(thermal - med))
    wl, wd = first_wavelet_layer(light)[sel], first_wavelet_layer(thermal)[sel]
    k_ls = np.cov(wl, wd)[0, 1] / np.var(wd, ddof=1)
    assert result.k == pytest.approx(k_ls, rel=1e-3)
    assert result.k == pytest.approx(0.37, rel=0.02)


def test_pedestal_and_no_cosmetic_options_are_recorded() -> None:
    cs = cmos_set("imx571")
    out = calibrate(light(cs), cs.masters, CalibrationOptions(pedestal=100.0, cosmetic=False))
    assert out.defects_corrected == 0 and out.pedestal == 100.0
    assert out.header["PEDESTAL"] == 100.0 and out.header["CALSTAT"] == "BDF"
    text = "\n".join(str(v) for v in out.header["HISTORY"])
    assert "(L - MD) / MF * s0" in text and "cosmetic off" in text


def test_cfa_separate_scale_factors() -> None:
    cs = cmos_set("imx294")
    out = calibrate(light(cs), cs.masters, CalibrationOptions(cfa_separate=True))
    assert set(out.s0) == {"R", "G", "B"}
    assert out.s0["G"] == pytest.approx(cs.flat.header["FLATMG"], rel=1e-3)


# --- mistakes ----------------------------------------------------------------------------------


def test_pre_calibrated_clipped_master_dark_is_refused() -> None:
    cs = cmos_set("imx571")
    darks = render(cs.model, "dark", 8, cs.light_exposure)
    clipped = [np.clip(d.astype(np.float32) - cs.bias.data, 0, None) for d in darks]
    master = combine(clipped, frame_type="dark", header=sim_header(cs.model, "dark", cs.light_exposure))
    with pytest.raises(SuspectMaster, match="pre-calibrated"):
        calibrate(light(cs), MasterSet(dark=master, flat=cs.flat), CalibrationOptions())
    with pytest.raises(SuspectMaster):
        build_master("dark", clipped, header=sim_header(cs.model, "dark", cs.light_exposure))


def test_uncalibrated_flats_are_refused_or_caught_by_residual_vignetting() -> None:
    cs = ccd_set()
    flats = render(cs.model, "flat", 8, cs.flat_exposure, panel_brightness=40, cap_closed=True)
    with pytest.raises(ConfigError, match="--darkflat"):
        build_master("flat", flats)
    raw_flat = combine(flats, normalize="multiplicative", frame_type="flat",
                       header=sim_header(cs.model, "flat", cs.flat_exposure))
    twilight = light(cs, sun_altitude=-17.0)  # a bright uniform sky shows the vignetting left behind
    out = calibrate(twilight, MasterSet(bias=cs.bias, dark=cs.dark, flat=raw_flat), CalibrationOptions(sensor="ccd"))
    checks = {w.check for w in out.warnings}
    assert {"flat-uncalibrated", "residual-vignetting"} <= checks
    good = calibrate(twilight, cs.masters, CalibrationOptions(sensor="ccd"))
    assert not {"flat-uncalibrated", "residual-vignetting"} & {w.check for w in good.warnings}


def test_12_bit_flats_with_16_bit_lights_are_refused(tmp_path: Path) -> None:
    m = SimModel("small", seed=9, width=96, height=64)
    bias16 = build_master("bias", write_frames(tmp_path, "bias", render(m, "bias", 5), sim_header(m, "bias", 0.0)))
    flats12 = [f // 16 for f in render(m, "flat", 5, 1.0, panel_brightness=60, cap_closed=True)]
    paths = write_frames(tmp_path, "flat12", flats12, sim_header(m, "flat", 1.0))
    with pytest.raises(BitDepthMismatch, match="12-bit"):
        build_master("flat", paths, bias=bias16)
    bias12 = [b // 16 for b in render(m, "bias", 5)]
    mb12 = build_master("bias", write_frames(tmp_path, "bias12", bias12, sim_header(m, "bias", 0.0)))
    flat12 = build_master("flat", paths, bias=mb12)
    assert flat12.header["DATAMAX"] == 4095
    light16 = (m.render("light", exposure=10.0), sim_header(m, "light", 10.0))
    with pytest.raises(BitDepthMismatch, match="--rescale-bit-depth"):
        calibrate(light16, MasterSet(bias=bias16, flat=flat12))
    out = calibrate(light16, MasterSet(bias=bias16, flat=flat12), CalibrationOptions(rescale_bit_depth=True))
    assert any(w.check == "bit-depth" for w in out.warnings)


def test_size_mismatch_is_refused() -> None:
    cs = cmos_set("imx571")
    data, header = light(cs)
    with pytest.raises(Exception, match="same camera mode"):
        calibrate((data[:100], header), cs.masters)


# --- command line --------------------------------------------------------------------------------


def test_calibrate_command_writes_float32_with_history(tmp_path: Path) -> None:
    cs = cmos_set("imx571")
    dark = cs.dark.write(tmp_path / "dark.fits")
    flat = cs.flat.write(tmp_path / "flat.fits")
    lights = write_frames(tmp_path, "light", [light(cs, seed=s)[0] for s in (1, 2)], light(cs)[1])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "calibrate", *map(str, lights), "-o", str(out), "--dark", str(dark),
         "--flat", str(flat), "--pedestal", "50"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 lights calibrated" in proc.stdout
    files = sorted(out.glob("*.fits"))
    assert [f.name for f in files] == ["light_000_cal.fits", "light_001_cal.fits"]
    with fits.open(files[0]) as hdul:
        assert hdul[0].data.dtype.kind == "f" and hdul[0].header["BITPIX"] == -32
        history = "\n".join(str(v) for v in hdul[0].header["HISTORY"])
    assert "master dark: dark.fits" in history and "master flat: flat.fits" in history
    assert "pedestal = 50" in history


def test_calibrate_command_without_masters_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "calibrate", "x.fits", "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--dark" in proc.stderr


def test_stack_command_builds_calibrated_flat(tmp_path: Path) -> None:
    m = SimModel("small", seed=12, width=128, height=96)
    bias = write_frames(tmp_path, "bias", render(m, "bias", 5), sim_header(m, "bias", 0.0))
    flats = write_frames(tmp_path, "flat", render(m, "flat", 5, 1.0, panel_brightness=100, cap_closed=True),
                         sim_header(m, "flat", 1.0))

    def stack(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent.cli", "stack", *argv], capture_output=True, text=True,
                              timeout=120)

    assert stack(*map(str, bias), "-o", str(tmp_path / "mb.fits")).returncode == 0
    refused = stack(*map(str, flats), "-o", str(tmp_path / "mf.fits"))
    assert refused.returncode == 2 and "--darkflat" in refused.stderr
    done = stack(*map(str, flats), "-o", str(tmp_path / "mf.fits"), "--bias", str(tmp_path / "mb.fits"))
    assert done.returncode == 0, done.stderr
    master = load_master(tmp_path / "mf.fits", "flat")
    assert master.header["FLATCAL"] == "bias" and master.header["IMAGETYP"] == "Master Flat"
    assert master.defects is not None


def test_master_dark_from_light_leaking_darks_carries_a_warning(tmp_path: Path) -> None:
    m = SimModel("small", seed=13, width=128, height=96)
    hdr = sim_header(m, "dark", 10.0)
    leaking = [m.render("dark", exposure=10.0, cap_closed=True, light_leak=1e-4, sun_altitude=a)
               for a in np.linspace(-4.0, -9.0, 6)]
    paths = write_frames(tmp_path, "leak", leaking, hdr)
    master = build_master("dark", paths)
    assert any(i.check == "light-leak" for i in master.issues)
    assert any("light-leak" in str(v) for v in master.header["HISTORY"])
    tight = [m.render("dark", exposure=10.0, cap_closed=True, sun_altitude=a) for a in np.linspace(-4.0, -9.0, 6)]
    assert not any(i.check == "light-leak" for i in build_master("dark", tight, header=hdr).issues)


def test_calibrate_module_keeps_the_names_its_callers_import() -> None:
    """The CLI, the night and the library import from `agent.stacking.calibrate`."""
    from agent.stacking import calibrate as facade
    from agent.stacking import lights, masterset, recipes

    assert facade.build_master is recipes.build_master and facade.MASTER_KINDS is recipes.MASTER_KINDS
    assert facade.calibrate is lights.calibrate and facade.CalibrationOptions is lights.CalibrationOptions
    assert facade.CalibratedLight is lights.CalibratedLight and facade.SENSOR_KINDS is lights.SENSOR_KINDS
    assert facade.MasterSet is masterset.MasterSet
    assert all(hasattr(facade, name) for name in facade.__all__)
