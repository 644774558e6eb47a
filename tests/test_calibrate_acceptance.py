"""Acceptance of issue 5 on indi_sim model data whose truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.stacking.cosmetic import cfa_channels
from agent.stacking.lights import CalibrationOptions, calibrate
from agent.stacking.masterset import MasterSet
from agent.stacking.recipes import build_master
from tests.calibrate_fixtures import (
    CalibrationSet,
    ccd_set,
    cmos_set,
    expected_calibrated,
    light,
    render,
    sim_header,
)


def _good(cs: CalibrationSet, *maps: np.ndarray | None) -> np.ndarray:
    mask = np.ones((cs.model.spec.height, cs.model.spec.width), dtype=np.bool_)
    for d in maps:
        if d is not None:
            mask = mask & (d == 0)
    return mask


def _block_means(img: np.ndarray, block: int) -> np.ndarray:
    h, w = (img.shape[0] // block) * block, (img.shape[1] // block) * block
    return img[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))


@pytest.mark.parametrize("preset", ["imx294", "imx571"])
def test_cmos_uniform_sky_is_flat_and_unclipped(preset: str) -> None:
    cs = cmos_set(preset)
    out = calibrate(light(cs), cs.masters, CalibrationOptions())
    assert out.clipped_fraction == 0.0
    assert out.formula == "(L - MD) / MF * s0"
    truth = expected_calibrated(cs)
    ratio = out.data / truth
    cfa = cs.model.spec.cfa
    worst = 0.0
    for _colour, parities in cfa_channels(cfa).items():
        for r, c in parities or [(0, 0)]:
            step = 2 if cfa else 1
            sub = ratio[r::step, c::step]
            blocks = _block_means(sub, 16 // step)
            worst = max(worst, float(np.std(blocks / blocks.mean())))
    assert worst < 0.003, f"large-scale rms {100 * worst:.3f} % after removing the known sky"


def _master_variance(cs: CalibrationSet) -> np.ndarray:
    """Per-pixel variance a calibrated noise-free light inherits from the masters (ADU^2)."""
    m = cs.model
    t = m.truth()
    g = t.gain_e_per_adu(m.spec.gain_default)
    rn2 = t.read_noise_adu(m.spec.gain_default) ** 2
    q2 = m.spec.adc_scale**2 / 12.0
    n = cs.n
    exp, fexp = cs.light_exposure, cs.flat_exposure
    dark = m.expected_adu("dark", exposure=exp, cap_closed=True) - m.expected_adu("bias")
    var_dark = (np.maximum(dark, 0) / g + rn2 + q2) / n
    darkflat = m.expected_adu("dark", exposure=fexp, cap_closed=True) - m.expected_adu("bias")
    flat = m.expected_adu("flat", exposure=fexp, **cs.flat_kw) - m.expected_adu("dark", exposure=fexp, cap_closed=True)
    var_flat = ((flat + darkflat) / g + rn2 + q2) / n + (np.maximum(darkflat, 0) / g + rn2 + q2) / n
    scale = float(flat.mean()) / flat
    truth = expected_calibrated(cs)
    return (q2 + var_dark) * scale**2 + truth**2 * var_flat / flat**2


@pytest.mark.parametrize("preset", ["imx294", "imx571"])
def test_cmos_residual_fixed_pattern_at_theoretical_floor(preset: str) -> None:
    cs = cmos_set(preset)
    out = calibrate(light(cs, noise=False), cs.masters, CalibrationOptions())
    good = _good(cs, cs.dark.defects, cs.flat.defects)
    resid = (out.data - expected_calibrated(cs))[good]
    measured = float(np.var(resid - resid.mean()))
    floor = float(_master_variance(cs)[good].mean())
    assert abs(measured / floor - 1.0) < 0.10, f"residual FPN variance {measured:.3f} vs floor {floor:.3f}"


def test_amp_glow_corner_residual_below_noise() -> None:
    cs = cmos_set("imx294")
    glow = cs.model.truth().amp_glow_at(cs.light_exposure, 0.0) / cs.model.gain_e_per_adu(cs.model.spec.gain_default)
    corner = (slice(0, 8), slice(cs.model.spec.width - 8, None))
    assert glow[corner].mean() > 100  # the corner really glows (ADU)
    data, header = light(cs)
    out = calibrate((data, header), cs.masters, CalibrationOptions())
    resid = (out.data - expected_calibrated(cs))[corner]
    noise = float(np.std(resid))
    assert abs(float(resid.mean())) < 3 * noise / math.sqrt(resid.size)
    assert noise < 1.5 * float(np.std((out.data - expected_calibrated(cs))[96:104, 124:132]))


def test_ccd_dark_optimisation_recovers_k() -> None:
    cs = ccd_set()
    out = calibrate(light(cs), cs.masters, CalibrationOptions(sensor="ccd", dark_optimize=True))
    k_true = cs.light_exposure / 600.0
    assert out.k is not None and abs(out.k / k_true - 1.0) < 0.02, out.k
    assert out.dark_optimization is not None and out.dark_optimization.pixels >= 50
    assert "DARKK" in out.header


def test_ccd_dark_optimisation_recovers_k_across_temperature() -> None:
    cs = ccd_set()
    out = calibrate(light(cs, temperature=3.0), cs.masters, CalibrationOptions(sensor="ccd", dark_optimize=True,
                                                                  temperature_tolerance=5.0))
    k_true = cs.light_exposure / 600.0 * cs.model.thermal_factor(3.0)
    assert out.k is not None and abs(out.k / k_true - 1.0) < 0.02, (out.k, k_true)


def test_ccd_scaled_dark_matches_matched_dark_within_noise() -> None:
    cs = ccd_set()
    m = cs.model
    matched = build_master("dark", render(m, "dark", cs.n, cs.light_exposure),
                           header=sim_header(m, "dark", cs.light_exposure))
    data, header = light(cs)
    scaled = calibrate((data, header), cs.masters, CalibrationOptions(sensor="ccd"))
    assert scaled.k == pytest.approx(0.5)
    direct = calibrate((data, header), MasterSet(bias=cs.bias, dark=matched, flat=cs.flat), CalibrationOptions(sensor="ccd"))
    assert direct.k is None
    good = _good(cs, cs.dark.defects, matched.defects, cs.flat.defects)
    diff = (scaled.data - direct.data)[good]
    light_noise = float(np.std((scaled.data - expected_calibrated(cs))[good]))
    assert float(np.std(diff)) < 0.5 * light_noise
    assert abs(float(diff.mean())) < 0.05 * light_noise
