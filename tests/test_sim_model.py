"""The simulator's ground-truth model: frames follow the laws `truth()` documents."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from agent.errors import ConfigError
from indi_sim.astro import sun_altaz
from indi_sim.model import PRESETS, SimModel, sky_flux_e_s

W, H = 256, 192


@pytest.fixture(scope="module")
def model() -> SimModel:
    return SimModel("small", seed=7, width=W, height=H)


def _mean_dark(m: SimModel, exposure: float, temperature: float, n: int = 4) -> float:
    frames = [m.render("dark", exposure, temperature=temperature, cap_closed=True).astype(np.float64) for _ in range(n)]
    return float(np.mean(frames))


def test_same_seed_gives_same_frames_and_maps() -> None:
    a = SimModel("small", seed=3, width=64, height=48)
    b = SimModel("small", seed=3, width=64, height=48)
    assert np.array_equal(a.render("flat", 1.0, cap_closed=True, panel_brightness=50),
                          b.render("flat", 1.0, cap_closed=True, panel_brightness=50))
    assert np.array_equal(a.truth().dark_current_e_s, b.truth().dark_current_e_s)
    c = SimModel("small", seed=4, width=64, height=48)
    assert not np.array_equal(a.truth().prnu, c.truth().prnu)


def test_output_is_16bit_scaled_from_native_adc(model: SimModel) -> None:
    frame = model.render("bias")
    assert frame.dtype == np.uint16 and frame.shape == (H, W)
    assert np.all(frame % model.spec.adc_scale == 0)  # 12-bit data shifted up as drivers do


def test_bias_level_follows_offset(model: SimModel) -> None:
    t = model.truth()
    for offset in (5, 20, 40):
        frame = model.render("bias", offset=offset).astype(np.float64)
        assert abs(frame.mean() - t.pedestal_adu(offset)) < 1.0
    assert t.pedestal_adu(40) - t.pedestal_adu(5) == pytest.approx(35 * model.spec.offset_step_adu)


def test_bias_fixed_pattern_matches_truth(model: SimModel) -> None:
    stack = np.mean([model.render("bias", offset=20).astype(np.float64) for _ in range(16)], axis=0)
    expected = model.truth().bias_adu(20)
    resid = stack - expected
    assert abs(resid.mean()) < 0.5
    assert np.corrcoef(stack.ravel(), expected.ravel())[0, 1] > 0.6


def test_dark_signal_linear_in_exposure_and_doubles_per_6c() -> None:
    m = SimModel("ccd", seed=2, width=W, height=H)
    t = m.truth()
    bias = t.pedestal_adu(m.spec.offset_default)
    g = t.gain_e_per_adu(0)
    d60 = _mean_dark(m, 60, 10.0) - bias
    d120 = _mean_dark(m, 120, 10.0) - bias
    assert d120 / d60 == pytest.approx(2.0, rel=0.05)
    warm = _mean_dark(m, 120, 16.0) - bias
    assert warm / d120 == pytest.approx(2.0, rel=0.05)
    assert d120 * g == pytest.approx(float(t.dark_electrons(120, 10.0).mean()), rel=0.05)


def test_hot_pixels_and_amp_glow_where_truth_says(model: SimModel) -> None:
    t = model.truth()
    frame = model.render("dark", 300, temperature=20.0, cap_closed=True).astype(np.float64)
    hp = t.hot_pixels
    bright = hp.dark_e_s > 2.0
    assert bright.any()
    median = np.median(frame)
    assert np.all(frame[hp.y[bright], hp.x[bright]] > median + 50)
    glow = t.amp_glow_at(300, 20.0)
    corner = np.unravel_index(np.argmax(glow), glow.shape)
    assert corner == (0, W - 1)
    assert frame[:8, -8:].mean() > frame[H // 2 - 4 : H // 2 + 4, W // 2 - 4 : W // 2 + 4].mean() + 20
    # glow grows slower than exposure
    assert float(t.amp_glow_at(200, 0).max()) / float(t.amp_glow_at(100, 0).max()) < 1.9


def test_cmos_suppression_keeps_darks_near_bias() -> None:
    m = SimModel("imx571", seed=1, width=W, height=H)
    t = m.truth()
    dark = m.render("dark", 300, temperature=0.0, cap_closed=True).astype(np.float64)
    signal_e = (np.median(dark) - t.pedestal_adu(m.spec.offset_default)) * t.gain_e_per_adu(m.spec.gain_default)
    assert signal_e < 0.1 * m.spec.dark_current_e_s * 300


def test_flat_mean_proportional_to_brightness_times_exposure(model: SimModel) -> None:
    t = model.truth()
    bias = t.pedestal_adu(model.spec.offset_default)
    a = model.render("flat", 1.0, cap_closed=True, panel_brightness=40).mean() - bias
    b = model.render("flat", 2.0, cap_closed=True, panel_brightness=40).mean() - bias
    c = model.render("flat", 1.0, cap_closed=True, panel_brightness=80).mean() - bias
    assert b / a == pytest.approx(2.0, rel=0.02)
    assert c / a == pytest.approx(2.0, rel=0.02)


def test_flat_shape_matches_truth_per_filter(model: SimModel) -> None:
    t = model.truth()
    bias = t.bias_adu(model.spec.offset_default)
    for name in ("L", "Ha"):
        flux = t.panel_flux_e_s(200, name)
        exposure = 6000.0 / flux  # about 6000 e-
        flat = np.mean([model.render("flat", exposure, filter=name, cap_closed=True, panel_brightness=200) - bias
                        for _ in range(4)], axis=0)
        shape = t.flat_shape(name)
        ratio = flat / (shape * flat.mean() / shape.mean())
        assert np.std(ratio) < 0.012  # shot noise of ~24000 e- summed
    assert not np.allclose(t.dust("L"), t.dust("Ha"))


def test_cap_closed_is_dark_and_light_leak_shows() -> None:
    m = SimModel("small", seed=1, width=W, height=H)
    closed = m.render("dark", 10, cap_closed=True, sun_altitude=10).mean()
    leak = m.render("dark", 10, cap_closed=True, sun_altitude=10, light_leak=1e-3).mean()
    assert leak > closed + 100


def test_sky_brightness_follows_sun_altitude() -> None:
    ratio = sky_flux_e_s(-4.0) / sky_flux_e_s(-8.5)
    assert 7.0 < ratio < 14.0
    m = SimModel("small", seed=1, width=W, height=H)
    levels = [np.median(m.render("light", 0.2, sun_altitude=a)) for a in (-3.0, -5.0, -7.0, -9.0)]
    assert levels == sorted(levels, reverse=True)


def test_stars_show_at_night_not_in_bright_twilight() -> None:
    m = SimModel("small", seed=1, width=W, height=H)

    def peaks(frame: np.ndarray) -> int:
        f = frame.astype(np.float64)
        mad = np.median(np.abs(f - np.median(f))) * 1.4826
        return int(np.count_nonzero(f > np.median(f) + 15 * mad))

    night = m.render("light", 30, sun_altitude=-15)
    bright = m.render("light", 0.05, sun_altitude=-3)
    assert peaks(night) >= 2
    assert peaks(bright) == 0


def test_binning_and_roi_shapes(model: SimModel) -> None:
    assert model.render("bias", binning=2).shape == (H // 2, W // 2)
    assert model.render("bias", roi=(10, 20, 100, 50)).shape == (50, 100)


def test_unknown_preset_and_filter_are_user_errors() -> None:
    with pytest.raises(ConfigError, match="preset"):
        SimModel("nope")
    with pytest.raises(ConfigError, match="filter"):
        SimModel("small", width=32, height=32).render("flat", filter="X", cap_closed=True, panel_brightness=1)


def test_presets_have_the_documented_sizes() -> None:
    assert (PRESETS["imx294"].width, PRESETS["imx294"].height, PRESETS["imx294"].cfa) == (4144, 2822, "RGGB")
    assert (PRESETS["imx571"].width, PRESETS["imx571"].height) == (6248, 4176)
    assert PRESETS["ccd"].kind == "ccd" and PRESETS["ccd"].bit_depth == 16


def test_sun_altitude_matches_astropy() -> None:
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, get_sun
    from astropy.time import Time

    when = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)
    lat, lon = 48.2, 16.4
    alt, az = sun_altaz(when, lat, lon)
    loc = EarthLocation(lat=lat * u.deg, lon=lon * u.deg, height=0 * u.m)
    ref = get_sun(Time(when)).transform_to(AltAz(obstime=Time(when), location=loc))
    assert alt == pytest.approx(ref.alt.deg, abs=0.1)
    assert az == pytest.approx(ref.az.deg, abs=0.2)
