"""Quality checks on calibration frames and masters, each one function with a clear message.

Checks that find a mistake which would make the output wrong raise (bit depth, geometry); checks
that find something merely suspicious return `QualityIssue`s that the caller records on the
calibrated light or shows when a master is built.  The library runs the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from agent.errors import FrameMismatch, ObsAgentError
from agent.stacking.cosmetic import MAD_TO_SIGMA, cfa_pattern

FLAT_LEVEL = (0.20, 0.70)  # mean of a raw flat as a fraction of full scale
SATURATED_MAX = 1e-3  # fraction of a raw flat's pixels allowed at full scale
CLIPPED_WARN = 1e-3  # fraction of clipped pixels in a calibrated light that deserves a warning


class BitDepthMismatch(FrameMismatch):
    """A light and a master (or a flat and its dark flat) use different ADC ranges."""


class SuspectMaster(ObsAgentError):
    """A master's statistics show it cannot calibrate correctly (e.g. a pre-calibrated dark)."""


@dataclass(frozen=True)
class QualityIssue:
    """One finding: which check, and a one-line message that names the fix."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


# --- data range ---------------------------------------------------------------------------


def full_scale(data: np.ndarray, header: fits.Header | None = None) -> int | None:
    """The largest value the frame's data range can hold: 65535 for 16-bit (or scaled) data,
    4095 for native 12-bit data...; None when it cannot be told (float data without DATAMAX).

    A master records its sources' range as DATAMAX.  For raw integer frames the data decide:
    values that are all multiples of 2**n were scaled up to 16 bits; unscaled values that fit the
    header's ADCBITS (or BITDEPTH) are in the native range.
    """
    if header is not None and "DATAMAX" in header:
        return int(header["DATAMAX"])
    a = np.asarray(data)
    if a.dtype.kind == "f":
        return None
    if a.dtype.itemsize == 1:
        return 255
    sample = a.ravel()[:: max(1, a.size // 200_000)].astype(np.int64)
    nz = sample[sample != 0]
    step = 1
    if nz.size:
        bits = int(np.bitwise_or.reduce(nz))
        step = bits & -bits  # lowest bit set in any value: every value is a multiple of it
    if step > 1:
        return 65535
    adc_bits = None
    if header is not None:
        for key in ("ADCBITS", "BITDEPTH", "BITSPIX"):
            if key in header:
                try:
                    adc_bits = int(header[key])
                except (TypeError, ValueError):
                    continue
                break
    vmax = int(a.max()) if a.size else 0
    if adc_bits is not None and 8 <= adc_bits < 16 and vmax <= 2**adc_bits - 1:
        return 2**adc_bits - 1
    return 65535


def check_bit_depth(
    light_range: int | None, master_range: int | None, what: str, *, rescale: bool = False
) -> float:
    """Factor to apply to the master so its range matches the light's (1.0 when they agree).

    Different ranges (12-bit flats with 16-bit lights) are refused unless `rescale` is asked.
    """
    if light_range is None or master_range is None or light_range == master_range:
        return 1.0
    factor = (light_range + 1) / (master_range + 1)
    if not rescale:
        raise BitDepthMismatch(
            f"{what} is in a {_bits(master_range)}-bit range (0..{master_range}) but the frames it "
            f"calibrates are {_bits(light_range)}-bit (0..{light_range}); re-capture it in the same mode, "
            "or pass --rescale-bit-depth to scale it"
        )
    return factor


def _bits(full: int) -> int:
    return int(round(math.log2(full + 1)))


# --- geometry and tolerances --------------------------------------------------------------


def check_geometry(
    light: np.ndarray,
    light_header: fits.Header | None,
    master: np.ndarray,
    master_header: fits.Header | None,
    what: str,
) -> None:
    """Refuse a master whose size, binning or CFA pattern differs from the light's."""
    if light.shape != master.shape:
        raise FrameMismatch(
            f"{what} is {master.shape[1]}x{master.shape[0]} but the light is {light.shape[1]}x{light.shape[0]}; "
            "use a master of the same camera mode and frame size"
        )
    lh = light_header if light_header is not None else fits.Header()
    mh = master_header if master_header is not None else fits.Header()
    for key in ("XBINNING", "YBINNING"):
        if key in lh and key in mh and int(lh[key]) != int(mh[key]):
            raise FrameMismatch(
                f"{what} has {key}={mh[key]} but the light has {lh[key]}; use a master of the same binning"
            )
    if "BAYERPAT" in lh and "BAYERPAT" in mh and cfa_pattern(lh) != cfa_pattern(mh):
        raise FrameMismatch(
            f"{what} has CFA pattern {cfa_pattern(mh)} but the light has {cfa_pattern(lh)}; "
            "use a master from the same camera and frame origin"
        )


def _number(header: fits.Header | None, *keys: str) -> float | None:
    if header is None:
        return None
    for key in keys:
        if key in header:
            try:
                return float(header[key])
            except (TypeError, ValueError):
                return None
    return None


def exposure_of(header: fits.Header | None) -> float | None:
    return _number(header, "EXPTIME", "EXPOSURE")


def temperature_of(header: fits.Header | None) -> float | None:
    return _number(header, "CCD-TEMP", "SET-TEMP")


def check_temperature(
    light_header: fits.Header | None, master_header: fits.Header | None, what: str, tolerance_c: float = 2.0
) -> list[QualityIssue]:
    """Warn when the master was taken at another sensor temperature than the light."""
    tl, tm = temperature_of(light_header), temperature_of(master_header)
    if tl is None or tm is None or abs(tl - tm) <= tolerance_c:
        return []
    return [
        QualityIssue(
            "temperature",
            f"{what} taken at {tm:g} C, light at {tl:g} C (tolerance {tolerance_c:g} C); "
            "take masters at the light's set-point",
        )
    ]


def check_exposure(
    light_header: fits.Header | None, master_header: fits.Header | None, what: str, tolerance: float = 0.02
) -> list[QualityIssue]:
    """Warn when a dark that is applied unscaled has another exposure than the light."""
    el, em = exposure_of(light_header), exposure_of(master_header)
    if el is None or em is None or em <= 0 or abs(el - em) <= tolerance * em:
        return []
    return [
        QualityIssue(
            "exposure",
            f"{what} is {em:g} s but the light is {el:g} s and the dark is applied unscaled; "
            "use a dark of the light's exposure (CMOS) or a bias and --dark-optimize (CCD)",
        )
    ]


# --- flats ----------------------------------------------------------------------------------


def check_flat_level(
    data: np.ndarray,
    full: int | None,
    *,
    level: tuple[float, float] = FLAT_LEVEL,
    saturated_max: float = SATURATED_MAX,
) -> list[QualityIssue]:
    """A raw flat's mean should sit between 20 % and 70 % of full scale with few saturated pixels."""
    if full is None:
        return []
    a = np.asarray(data)
    mean = float(a.mean(dtype=np.float64))
    frac = mean / full
    issues = []
    if not level[0] <= frac <= level[1]:
        fix = (
            "lengthen the exposure or brighten the panel"
            if frac < level[0]
            else "shorten the exposure or dim the panel"
        )
        issues.append(
            QualityIssue(
                "flat-level",
                f"flat mean {mean:.0f} ADU is {100 * frac:.1f} % of full scale "
                f"(want {100 * level[0]:.0f}-{100 * level[1]:.0f} %); {fix}",
            )
        )
    sat = float(np.count_nonzero(a >= 0.999 * full)) / a.size  # scaled 14-bit data top out at 65532
    if sat > saturated_max:
        issues.append(
            QualityIssue(
                "flat-saturated",
                f"{100 * sat:.2f} % of the flat's pixels are saturated "
                f"(allowed {100 * saturated_max:.2f} %); shorten the exposure",
            )
        )
    return issues


def block_medians(
    img: np.ndarray, blocks: tuple[int, int] = (12, 16), max_pixels: int = 300_000
) -> np.ndarray:
    """Median of each block of a coarse grid: the large-scale shape, robust to stars and defects.

    Large frames are subsampled on a regular stride first: a few hundred thousand pixels fix a
    block median far below the 1 % level the callers look at.
    """
    stride = max(1, int((img.size / max_pixels) ** 0.5))
    a = img[::stride, ::stride]
    h, w = a.shape
    by, bx = min(blocks[0], h), min(blocks[1], w)
    hh, ww = (h // by) * by, (w // bx) * bx
    cells = a[:hh, :ww].reshape(by, hh // by, bx, ww // bx).transpose(0, 2, 1, 3).reshape(by, bx, -1)
    return np.median(cells, axis=-1).astype(np.float64)


def check_master_flat(
    data: np.ndarray, header: fits.Header | None = None, *, min_vignetting: float = 0.005
) -> list[QualityIssue]:
    """A master flat with no large-scale fall-off, or with pixels <= 0, is suspicious."""
    issues = []
    blocks = block_medians(np.asarray(data))
    med = float(np.median(blocks))
    spread = (float(blocks.max()) - float(blocks.min())) / med if med > 0 else 0.0
    if med <= 0:
        issues.append(
            QualityIssue("flat-level", f"master flat median is {med:g}; it must be positive — rebuild it")
        )
    elif spread < min_vignetting:
        issues.append(
            QualityIssue(
                "flat-no-vignetting",
                f"master flat varies by only {100 * spread:.2f} % across the "
                "field, no vignetting: check that the flats saw light through the telescope",
            )
        )
    bad = int(np.count_nonzero(~(np.asarray(data) > 0)))
    if bad:
        issues.append(
            QualityIssue(
                "flat-nonpositive", f"{bad} master flat pixels are <= 0; they are treated as defects"
            )
        )
    if header is not None and str(header.get("FLATCAL", "")).strip().lower() in ("", "none"):
        issues.append(
            QualityIssue(
                "flat-uncalibrated",
                "master flat does not record a dark flat or bias calibration; "
                "rebuild it with `obsagent stack --type flat --darkflat F` (or --bias F)",
            )
        )
    return issues


def check_residual_vignetting(
    calibrated: np.ndarray, master_flat: np.ndarray, *, amplitude: float = 0.01, min_r2: float = 0.6
) -> list[QualityIssue]:
    """A calibrated light whose large-scale shape follows the flat was flat-fielded wrongly.

    `master_flat` may be given as its `block_medians` already (calibrating many lights).

    The classic causes are flats not calibrated (their pedestal damps the correction) or a flat
    from another optical setup.  Only a strong, clean correlation is reported, so real sky
    gradients and nebulae do not trigger it.
    """
    c = block_medians(calibrated)
    f = master_flat if master_flat.shape == c.shape else block_medians(master_flat)
    cm, fm = float(np.median(c)), float(np.median(f))
    if not (cm > 0 and fm > 0):
        return []
    x = (f / fm - 1.0).ravel()
    y = (c / cm - 1.0).ravel()
    if float(np.ptp(x)) < 1e-3:
        return []
    slope, intercept = np.polyfit(x, y, 1)
    fit = slope * x + intercept
    ss_res = float(((y - fit) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    resid = abs(float(slope)) * float(np.ptp(x))
    if resid > amplitude and r2 > min_r2:
        return [
            QualityIssue(
                "residual-vignetting",
                f"calibrated light still follows the flat's shape by "
                f"{100 * resid:.1f} % ({'over' if slope < 0 else 'under'}-corrected); "
                "were the flats calibrated with a dark flat or bias, and taken with this optical setup?",
            )
        ]
    return []


# --- darks and biases -----------------------------------------------------------------------


def robust_level(data: np.ndarray) -> tuple[float, float]:
    """(median, sigma from the MAD) of a frame, from a subsample when it is large."""
    a = np.asarray(data).ravel()
    a = a[:: max(1, a.size // 1_000_000)].astype(np.float64)
    med = float(np.median(a))
    return med, MAD_TO_SIGMA * float(np.median(np.abs(a - med)))


def check_master_dark(hot_pixels: int, exposure: float | None = None) -> list[QualityIssue]:
    """Warn about a master dark that shows no hot pixels although its exposure should reveal them."""
    issues = []
    if hot_pixels is not None and hot_pixels == 0 and (exposure is None or exposure >= 10.0):
        issues.append(
            QualityIssue(
                "dark-no-hot-pixels",
                "master dark shows no hot pixels; was it taken with the "
                "cooler on and a real exposure (not a bias)?",
            )
        )
    return issues


def check_dark_pedestal(
    data: np.ndarray, *, bias: np.ndarray | None = None, what: str = "master dark"
) -> None:
    """Refuse a dark without its bias pedestal: pre-calibrated (bias subtracted, clipped at zero).

    Its low tail reaches zero (a raw dark's lowest pixels sit several sigma above zero on the
    pedestal), or its level lies below the master bias's.
    """
    med, sigma = robust_level(data)
    a = np.asarray(data).ravel()
    a = a[:: max(1, a.size // 1_000_000)]
    low = float(np.percentile(a, 0.1))
    fix = "rebuild it from the raw darks (never subtract the bias from darks before stacking)"
    if low <= max(sigma, 1e-6):
        raise SuspectMaster(
            f"{what} has no bias pedestal (0.1 % of its pixels are at {low:.3g} ADU, median "
            f"{med:.3g}): it looks pre-calibrated and clipped at zero; {fix}"
        )
    if bias is not None:
        bmed, bsig = robust_level(bias)
        if med < bmed - 3.0 * max(bsig, 1.0):
            raise SuspectMaster(
                f"{what} level {med:.1f} ADU lies below the master bias ({bmed:.1f} ADU): its bias "
                f"was subtracted already; {fix}"
            )


@dataclass(frozen=True)
class SeriesFrame:
    """What the light-leak check needs of one dark or bias of a series."""

    level: float  # clipped mean (not quantised like the median)
    noise: float
    exposure: float | None = None
    temperature: float | None = None


def series_frame(data: np.ndarray, header: fits.Header | None = None) -> SeriesFrame:
    """Summarise one frame of a dark or bias series: clipped mean, noise, exposure, temperature."""
    med, sigma = robust_level(data)
    a = np.asarray(data).ravel()
    a = a[:: max(1, a.size // 1_000_000)].astype(np.float64)
    keep = np.abs(a - med) <= 5.0 * max(sigma, 1e-6)
    level = float(a[keep].mean()) if keep.any() else med
    return SeriesFrame(level, sigma, exposure_of(header), temperature_of(header))


def check_light_leak(
    series: Sequence[SeriesFrame],
    *,
    drift_sigma: float = 0.25,
    temperature_tolerance: float = 1.0,
    exposure_tolerance: float = 0.01,
) -> list[QualityIssue]:
    """Darks or biases whose level drifts while exposure and temperature stay the same saw light.

    The drift is compared with the frames' pixel noise: a shift of a quarter sigma already
    biases every calibrated light, and without a leak the levels agree far better than that.
    """
    if len(series) < 3:
        return []
    levels = np.array([s.level for s in series])
    noise = float(np.median([s.noise for s in series]))
    drift = float(levels.max() - levels.min())
    if not drift > drift_sigma * max(noise, 1e-6):
        return []
    exps = [s.exposure for s in series if s.exposure is not None]
    temps = [s.temperature for s in series if s.temperature is not None]
    if exps and max(exps) - min(exps) > exposure_tolerance * max(exps):
        return [
            QualityIssue(
                "series-exposure",
                f"series mixes exposures {min(exps):g}-{max(exps):g} s; combine only frames of one exposure",
            )
        ]
    if temps and max(temps) - min(temps) > temperature_tolerance:
        return [
            QualityIssue(
                "series-temperature",
                f"levels drift by {drift:.1f} ADU while the temperature changed "
                f"{max(temps) - min(temps):.1f} C; wait for the cooler to settle",
            )
        ]
    order = np.arange(len(levels))
    trend = float(np.corrcoef(order, levels)[0, 1]) if np.ptp(levels) > 0 else 0.0
    return [
        QualityIssue(
            "light-leak",
            f"levels drift by {drift:.1f} ADU ({drift / max(noise, 1e-6):.1f} sigma"
            f"{', steadily' if abs(trend) > 0.8 else ''}) with exposure and temperature unchanged: "
            "light reaches the sensor; cover the telescope and camera and take them again",
        )
    ]


def check_clipped(fraction: float) -> list[QualityIssue]:
    """Warn when more than 0.1 % of a calibrated light had to be clipped to the valid range."""
    if fraction <= CLIPPED_WARN:
        return []
    return [
        QualityIssue(
            "clipped",
            f"{100 * fraction:.2f} % of the pixels were clipped to the valid range; "
            "use --pedestal to keep negative values, or check the masters match the light",
        )
    ]
