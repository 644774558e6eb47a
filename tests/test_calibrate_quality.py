"""Quality checks: each function against frames that should and should not trip it."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from agent.errors import FrameMismatch
from agent.stacking import quality
from indi_sim.model import SimModel


def _hdr(**cards: object) -> fits.Header:
    h = fits.Header()
    for k, v in cards.items():
        h[k.replace("_", "-")] = v
    return h


def test_full_scale_tells_scaled_16_bit_from_native_12_bit() -> None:
    m = SimModel("small", seed=1, width=64, height=48)
    flat = m.render("flat", exposure=1.0, panel_brightness=100, cap_closed=True)
    assert quality.full_scale(flat, _hdr(ADCBITS=12)) == 65535  # multiples of 16: scaled to 16 bits
    assert quality.full_scale(flat // 16, _hdr(ADCBITS=12)) == 4095
    assert quality.full_scale(np.zeros((4, 4), np.float32), _hdr(DATAMAX=4095)) == 4095
    assert quality.full_scale(np.zeros((4, 4), np.float32)) is None


def test_bit_depth_mismatch_refused_unless_rescale_asked() -> None:
    with pytest.raises(quality.BitDepthMismatch, match="12-bit range"):
        quality.check_bit_depth(65535, 4095, "master flat")
    assert quality.check_bit_depth(65535, 4095, "master flat", rescale=True) == 16.0
    assert quality.check_bit_depth(65535, 65535, "master flat") == 1.0


def test_geometry_mismatch_refused() -> None:
    a = np.zeros((8, 8))
    with pytest.raises(FrameMismatch, match="8x4"):
        quality.check_geometry(a, None, np.zeros((4, 8)), None, "master dark")
    with pytest.raises(FrameMismatch, match="binning"):
        quality.check_geometry(a, _hdr(XBINNING=1), a, _hdr(XBINNING=2), "master dark")
    with pytest.raises(FrameMismatch, match="CFA pattern"):
        quality.check_geometry(a, _hdr(BAYERPAT="RGGB"), a, _hdr(BAYERPAT="RGGB", XBAYROFF=1), "master flat")
    quality.check_geometry(a, _hdr(BAYERPAT="RGGB"), a, _hdr(BAYERPAT="RGGB"), "master flat")


def test_temperature_and_exposure_mismatch_warn() -> None:
    assert quality.check_temperature(_hdr(CCD_TEMP=-10.0), _hdr(CCD_TEMP=-9.0), "dark") == []
    (issue,) = quality.check_temperature(_hdr(CCD_TEMP=-10.0), _hdr(CCD_TEMP=0.0), "dark")
    assert issue.check == "temperature" and "-10" in issue.message
    assert quality.check_exposure(_hdr(EXPTIME=60.0), _hdr(EXPTIME=60.0), "dark") == []
    (issue,) = quality.check_exposure(_hdr(EXPTIME=60.0), _hdr(EXPTIME=120.0), "dark")
    assert issue.check == "exposure"


def test_flat_level_and_saturation() -> None:
    rng = np.random.default_rng(0)
    ok = rng.normal(30000, 200, (64, 64)).astype(np.uint16)
    assert quality.check_flat_level(ok, 65535) == []
    (low,) = quality.check_flat_level(ok // 10, 65535)
    assert low.check == "flat-level" and "lengthen" in low.message
    sat = ok.copy()
    sat[:8] = 65535
    checks = {i.check for i in quality.check_flat_level(sat, 65535)}
    assert "flat-saturated" in checks


def test_master_flat_without_vignetting_or_calibration_warns() -> None:
    m = SimModel("small", seed=1, width=128, height=96)
    shape = m.truth().flat_shape("L")
    assert quality.check_master_flat(shape * 20000, _hdr(FLATCAL="darkflat")) == []
    checks = {i.check for i in quality.check_master_flat(np.full((96, 128), 20000.0), fits.Header())}
    assert {"flat-no-vignetting", "flat-uncalibrated"} <= checks


def test_master_dark_without_hot_pixels_warns() -> None:
    assert quality.check_master_dark(12, exposure=300.0) == []
    (issue,) = quality.check_master_dark(0, exposure=300.0)
    assert issue.check == "dark-no-hot-pixels"


def test_pre_calibrated_dark_is_refused() -> None:
    m = SimModel("small", seed=2, width=128, height=96)
    raw = np.mean([m.render("dark", exposure=30.0, cap_closed=True).astype(np.float32) for _ in range(4)], axis=0)
    bias = m.expected_adu("bias")
    quality.check_dark_pedestal(raw, bias=bias)
    clipped = np.clip(raw - bias, 0, None)
    with pytest.raises(quality.SuspectMaster, match="pre-calibrated"):
        quality.check_dark_pedestal(clipped)
    with pytest.raises(quality.SuspectMaster, match="below the master bias"):
        quality.check_dark_pedestal(raw - 0.5 * bias, bias=bias)


def test_light_leak_in_dark_series_is_found() -> None:
    m = SimModel("small", seed=3, width=128, height=96)
    hdr = _hdr(EXPTIME=10.0, CCD_TEMP=0.0)
    sun = np.linspace(-4.0, -9.0, 6)
    leaking = [quality.series_frame(m.render("dark", exposure=10.0, cap_closed=True, light_leak=1e-4, sun_altitude=a), hdr)
               for a in sun]
    tight = [quality.series_frame(m.render("dark", exposure=10.0, cap_closed=True, sun_altitude=a), hdr) for a in sun]
    (issue,) = quality.check_light_leak(leaking)
    assert issue.check == "light-leak" and "cover" in issue.message
    assert quality.check_light_leak(tight) == []


def test_clipped_fraction_warns_above_a_tenth_of_a_percent() -> None:
    assert quality.check_clipped(0.0005) == []
    (issue,) = quality.check_clipped(0.01)
    assert "pedestal" in issue.message


def test_residual_vignetting_found_in_badly_flat_fielded_light() -> None:
    m = SimModel("small", seed=4, width=128, height=96)
    flat = m.truth().flat_shape("L") * 20000
    good = np.full(flat.shape, 1000.0)
    assert quality.check_residual_vignetting(good, flat) == []
    under = 1000.0 * (flat / flat.mean()) ** 0.1  # flat correction damped, as by an uncalibrated flat
    (issue,) = quality.check_residual_vignetting(under, flat)
    assert issue.check == "residual-vignetting"
