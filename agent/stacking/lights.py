"""Calibrating a light with the masters of its configuration.

CMOS  (L - MD) / MF * s0
CCD   ((L - MB) - k (MD - MB)) / MF * s0,  k the exposure ratio or the noise-optimal k
with s0 = mean(MF) (per CFA colour when asked).  Intermediates are float64 per pixel and never
clipped; one final clip to the valid range, after an optional output pedestal.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
from astropy.io import fits

from agent import __version__
from agent.errors import ConfigError
from agent.stacking import cosmetic, products, quality
from agent.stacking.darkopt import DarkOptimization, DarkOptimizer
from agent.stacking.masterset import MasterSet, prepare
from agent.stacking.quality import QualityIssue

log = logging.getLogger(__name__)

SENSOR_KINDS = ("cmos", "ccd")


@dataclass(frozen=True)
class CalibrationOptions:
    sensor: str | None = None  # cmos | ccd; None: the light header's SENSKIND, else cmos
    dark_optimize: bool = False
    pedestal: float = 0.0  # added to the output before the final clip (ADU)
    cosmetic: bool = True
    cfa_separate: bool = False  # one flat scale factor s0 per CFA colour
    rescale_bit_depth: bool = False  # scale masters of another ADC range instead of refusing
    temperature_tolerance: float = 2.0
    exposure_tolerance: float = 0.02
    output_max: float | None = None  # default: the light's full scale


@dataclass
class CalibratedLight:
    data: np.ndarray
    header: fits.Header
    k: float | None
    s0: dict[str, float]
    pedestal: float
    warnings: list[QualityIssue]
    clipped_fraction: float
    clipped_low: int = 0
    clipped_high: int = 0
    defects_corrected: int = 0
    formula: str = ""
    dark_optimization: DarkOptimization | None = None
    source: str | None = None

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the calibrated light as a product: float32 ADU / 65535 (`products.py`)."""
        return products.write_product(path, self.data, self.header)


@numba.njit(parallel=True, nogil=True, cache=True)
def _apply(
    light: np.ndarray,
    offset: np.ndarray,
    thermal: np.ndarray,
    k: float,
    flat_scale: np.ndarray,
    use_offset: bool,
    use_thermal: bool,
    use_flat: bool,
    pedestal: float,
    top: float,
    out: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover
    """One pass: the formula in float64, the pedestal, then the only clip; returns (low, high) counts."""
    rows, cols = light.shape
    low = np.zeros(rows, np.int64)
    high = np.zeros(rows, np.int64)
    for r in numba.prange(rows):
        for c in range(cols):
            v = float(light[r, c])
            if use_offset:
                v -= offset[r, c]
            if use_thermal:
                v -= k * thermal[r, c]
            if use_flat:
                v *= flat_scale[r, c]
            v += pedestal
            if v < 0.0:
                v = 0.0
                low[r] += 1
            elif v > top:
                v = top
                high[r] += 1
            out[r, c] = v
    return low.sum(), high.sum()


def _read_light(light: Any) -> tuple[np.ndarray, fits.Header, str | None]:
    if isinstance(light, str | os.PathLike):
        data, header = products.read_product(light)  # raw frames as stored; a product back in ADU
        return data, header, str(light)
    if isinstance(light, tuple):
        return np.asarray(light[0]), light[1] if light[1] is not None else fits.Header(), None
    if isinstance(light, np.ndarray):
        return light, fits.Header(), None
    raise TypeError(f"cannot calibrate a {type(light).__name__}; give a path, an array or (array, header)")


def sensor_kind(header: fits.Header, options: CalibrationOptions) -> str:
    kind = options.sensor or str(header.get("SENSKIND", "cmos")).strip().lower()
    if kind not in SENSOR_KINDS:
        raise ConfigError(f"unknown sensor kind {kind!r}; use --sensor cmos or --sensor ccd")
    return kind


def calibrate(light: Any, masters: MasterSet, options: CalibrationOptions | None = None) -> CalibratedLight:
    """Calibrate one light (path, array or (array, header)) with `masters`."""
    options = options or CalibrationOptions()
    data, header, path = _read_light(light)
    if data.ndim != 2:
        raise ConfigError(f"{path or 'light'}: only 2-D (mono or undebayered CFA) lights can be calibrated")
    if masters.bias is None and masters.dark is None and masters.flat is None:
        raise ConfigError("no masters given; pass at least one of --bias, --dark, --flat")
    warnings: list[QualityIssue] = []
    full = quality.full_scale(data, header)
    light_full = full if full is not None else 65535
    cfa = cosmetic.cfa_pattern(header)
    for m in (masters.bias, masters.dark, masters.flat):
        if m is not None:
            quality.check_geometry(data, header, m.data, m.header, f"{m.name} ({m.kind})")
            warnings += quality.check_temperature(header, m.header, m.name, options.temperature_tolerance)
    kind = sensor_kind(header, options)

    # how the dark is applied: matched (subtract as is) or scaled over the bias
    k: float | None = None
    opt: DarkOptimization | None = None
    md, mb = masters.dark, masters.bias
    light_exp = quality.exposure_of(header)
    scaled = False
    if md is not None:
        dark_exp = quality.exposure_of(md.header)
        matched = (
            light_exp is not None
            and dark_exp is not None
            and abs(light_exp - dark_exp) <= options.exposure_tolerance * dark_exp
        )
        # Exposures known and different: the dark must be scaled (over the bias), whatever the sensor.
        differs = not matched and light_exp is not None and dark_exp is not None
        if options.dark_optimize or differs or (kind == "ccd" and not matched):
            if mb is None:
                raise ConfigError(
                    f"the master dark is {dark_exp:g} s but the light {light_exp:g} s: scaling it needs the "
                    "master bias; give --bias F, or a dark of the light's exposure"
                    if differs and not options.dark_optimize
                    else "scaling the master dark needs the master bias; give --bias F "
                    "(or a dark of the light's exposure without --dark-optimize)"
                )
            scaled = True
            if kind == "cmos":
                warnings.append(
                    QualityIssue(
                        "dark-scaling",
                        "dark scaled on a CMOS sensor: amp glow and "
                        "dark-current suppression do not scale with exposure; prefer a matched dark",
                    )
                )
        elif not matched:
            warnings += quality.check_exposure(header, md.header, md.name, options.exposure_tolerance)
    plan = prepare(masters, options, scaled, light_full, cfa)
    warnings += plan.issues
    if scaled:
        assert md is not None and mb is not None and plan.thermal is not None and plan.offset is not None
        dark_exp = quality.exposure_of(md.header)
        k_nominal = light_exp / dark_exp if light_exp and dark_exp else 1.0
        if options.dark_optimize:
            if plan.optimizer is None:
                plan.optimizer = DarkOptimizer.prepare(plan.offset, plan.thermal)
            opt = plan.optimizer.optimize(data, k_nominal=k_nominal)
            k = opt.k
        else:
            if not (light_exp and dark_exp):
                raise ConfigError(
                    "scaling the master dark needs EXPTIME in the light and dark headers; "
                    "add them or use --dark-optimize"
                )
            k = k_nominal
    formula = _formula(masters, scaled)

    out = np.empty(data.shape, np.float32)
    empty = np.zeros((1, 1), np.float32)
    light_arr = (
        data if data.dtype in (np.uint16, np.float32, np.int16, np.float64) else data.astype(np.float32)
    )
    top = float(options.output_max if options.output_max is not None else light_full)
    low, high = _apply(
        light_arr,
        plan.offset if plan.offset is not None else empty,
        plan.thermal if plan.thermal is not None else empty,
        float(k or 0.0),
        plan.flat_scale if plan.flat_scale is not None else empty,
        plan.offset is not None,
        scaled,
        plan.flat_scale is not None,
        float(options.pedestal),
        top,
        out,
    )
    corrected = 0
    if (
        options.cosmetic
        and plan.defects is not None
        and plan.defect_ys is not None
        and plan.defect_xs is not None
    ):
        # defect pixels are replaced from (clipped, in-range) neighbours: they do not count as clipped
        at = out[plan.defect_ys, plan.defect_xs]
        low -= int(np.count_nonzero(at <= 0.0))
        high -= int(np.count_nonzero(at >= top))
        corrected = cosmetic.correct_at(out, plan.defect_ys, plan.defect_xs, plan.defects, cfa)
    clipped = (low + high) / out.size
    warnings += quality.check_clipped(clipped)
    if plan.flat_blocks is not None:
        warnings += quality.check_residual_vignetting(out, plan.flat_blocks)

    hdr = _light_header(
        header, masters, options, formula, k, opt, plan.s0, clipped, (int(low), int(high)), corrected, warnings, light_full
    )
    for w in warnings:
        log.warning("%s: %s", path or "light", w)
    return CalibratedLight(
        out,
        hdr,
        k,
        plan.s0,
        float(options.pedestal),
        warnings,
        clipped,
        int(low),
        int(high),
        corrected,
        formula,
        opt,
        path,
    )


def _formula(masters: MasterSet, scaled: bool) -> str:
    if scaled:
        num = "(L - MB) - k (MD - MB)"
    elif masters.dark is not None:
        num = "L - MD"
    elif masters.bias is not None:
        num = "L - MB"
    else:
        num = "L"
    return f"({num}) / MF * s0" if masters.flat is not None else num


def _light_header(
    header: fits.Header,
    masters: MasterSet,
    options: CalibrationOptions,
    formula: str,
    k: float | None,
    opt: DarkOptimization | None,
    s0: dict[str, float],
    clipped: float,
    clipped_counts: tuple[int, int],
    corrected: int,
    warnings: list[QualityIssue],
    full: int,
) -> fits.Header:
    hdr = header.copy()
    for key in ("BZERO", "BSCALE", "BITPIX"):
        if key in hdr:
            del hdr[key]
    used = "".join(
        c for c, m in (("B", masters.bias), ("D", masters.dark), ("F", masters.flat)) if m is not None
    )
    hdr["CALSTAT"] = (used, "calibrated with Bias/Dark/Flat masters")
    hdr["PEDESTAL"] = (float(options.pedestal), "ADU added before the final clip")
    if k is not None:
        hdr["DARKK"] = (round(k, 6), "dark scale factor k")
    for colour, value in s0.items():
        hdr["FLATS0" if colour == "all" else f"FLATS0{colour}"] = (value, "flat scale s0 = mean(master flat)")
    hdr["CLIPFRAC"] = (clipped, "fraction of pixels clipped at the end")
    hdr["CLIPLO"] = (clipped_counts[0], "pixels clipped at 0")
    hdr["CLIPHI"] = (clipped_counts[1], "pixels clipped at full scale")
    hdr["DATAMAX"] = (full, "full scale of the data range (ADU)")
    hdr.add_history(f"obsagent {__version__} calibration: {formula}")
    for m in (masters.bias, masters.dark, masters.flat):
        if m is not None:
            hdr.add_history(f"master {m.kind}: {m.name}")
    if k is not None:
        how = "dark optimisation" if opt is not None else "exposure ratio"
        hdr.add_history(f"k = {k:.5f} ({how})")
    if s0:
        hdr.add_history("s0 = " + ", ".join(f"{c} {v:.6g}" for c, v in s0.items()))
    hdr.add_history(
        f"pedestal = {options.pedestal:g} ADU; clipped {100 * clipped:.4f} %; "
        f"cosmetic {'off' if not options.cosmetic else f'{corrected} pixels'}"
    )
    for w in warnings:
        hdr.add_history(f"WARNING {w}")
    return hdr


__all__ = ["SENSOR_KINDS", "CalibratedLight", "CalibrationOptions", "calibrate", "sensor_kind"]
