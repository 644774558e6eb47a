"""Master recipes and light-frame calibration.

Masters: bias, dark and dark flat are plain integrations (the dark keeps its bias pedestal, so
nothing is ever truncated); a flat is integrated only after each frame is calibrated with the
master dark flat (preferred) or bias, then normalised multiplicatively.

Lights:  CMOS  (L - MD) / MF * s0
         CCD   ((L - MB) - k (MD - MB)) / MF * s0,  k the exposure ratio or the noise-optimal k
with s0 = mean(MF) (per CFA colour when asked).  Intermediates are float64 per pixel and never
clipped; one final clip to the valid range, after an optional output pedestal.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
from astropy.io import fits

from agent import __version__
from agent.errors import ConfigError, CorruptFile
from agent.fitsfile import read_fits, write_fits_atomic, write_hdul_atomic
from agent.stacking import cosmetic, quality
from agent.stacking.combine import MASTER_TYPES, Master, combine, source_hash
from agent.stacking.darkopt import DarkOptimization, DarkOptimizer
from agent.stacking.frames import source_of
from agent.stacking.quality import QualityIssue

log = logging.getLogger(__name__)

MASTER_KINDS = ("bias", "dark", "darkflat", "flat")
SENSOR_KINDS = ("cmos", "ccd")
DEFECTS_EXTNAME = "DEFECTS"

Source = str | os.PathLike[str] | np.ndarray


# --- masters ----------------------------------------------------------------------------------


@dataclass
class CalibrationMaster(Master):
    """A master built by a recipe: also its defect map (written as a DEFECTS extension) and the
    quality findings made while building it (also in its HISTORY)."""

    defects: np.ndarray | None = None
    issues: list[QualityIssue] = field(default_factory=list)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the master (float32) and its defect map atomically in one FITS file."""
        if self.defects is None:
            return super().write(path)
        target = Path(path)
        hdul = fits.HDUList(
            [
                fits.PrimaryHDU(np.asarray(self.data, np.float32), self.header),
                _defects_hdu(self.defects),
            ]
        )
        write_hdul_atomic(target, hdul)
        for suffix, rmap in (("rejlow", self.rejection_low), ("rejhigh", self.rejection_high)):
            if rmap is not None:
                hdr = fits.Header()
                hdr["IMAGETYP"] = (f"Rejection map {suffix[3:]}", "values rejected per pixel")
                write_fits_atomic(target.with_name(f"{target.stem}_{suffix}{target.suffix}"), rmap, hdr)
        return target


def _defects_hdu(defects: np.ndarray) -> fits.ImageHDU:
    hdr = fits.Header()
    hdr["EXTNAME"] = DEFECTS_EXTNAME
    hdr["COMMENT"] = "cosmetic defects: 0 good, 1 hot, 2 cold"
    return fits.ImageHDU(np.asarray(defects, np.uint8), hdr)


@dataclass
class MasterFrame:
    """A master ready to calibrate with: float32 data, header, and its defect map if stored."""

    kind: str
    data: np.ndarray
    header: fits.Header
    path: str | None = None
    defects: np.ndarray | None = None

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else f"master {self.kind}"


def load_master(path: str | os.PathLike[str], kind: str) -> MasterFrame:
    """Read a master FITS (primary image, optional DEFECTS extension)."""
    try:
        with fits.open(path, memmap=False) as hdul:
            data = np.asarray(hdul[0].data, dtype=np.float32)
            header = hdul[0].header.copy()
            defects = None
            if DEFECTS_EXTNAME in hdul:
                defects = np.asarray(hdul[DEFECTS_EXTNAME].data, np.uint8)
    except FileNotFoundError as exc:
        raise CorruptFile(f"{path}: no such master; check the path") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptFile(f"{path}: not a readable FITS master ({exc}); rebuild it") from exc
    if data.ndim != 2:
        raise CorruptFile(f"{path}: master is not a 2-D image; rebuild it")
    return MasterFrame(kind, data, header, str(path), defects)


def as_master(item: Any, kind: str) -> MasterFrame | None:
    """A MasterFrame from a path, a built Master, an (array, header) pair or a bare array."""
    if item is None:
        return None
    if isinstance(item, MasterFrame):
        return item
    if isinstance(item, str | os.PathLike):
        return load_master(item, kind)
    if isinstance(item, tuple):
        data, header = item
        return MasterFrame(kind, np.asarray(data, np.float32), header or fits.Header())
    if isinstance(item, np.ndarray):
        return MasterFrame(kind, item.astype(np.float32, copy=False), fits.Header())
    if hasattr(item, "data") and hasattr(item, "header"):
        return MasterFrame(
            kind, np.asarray(item.data, np.float32), item.header, None, getattr(item, "defects", None)
        )
    raise TypeError(f"cannot use a {type(item).__name__} as a master {kind}")


# --- master recipes ---------------------------------------------------------------------------


def build_master(
    kind: str,
    sources: Sequence[Source],
    *,
    darkflat: Any = None,
    bias: Any = None,
    dark: Any = None,
    **combine_kwargs: Any,
) -> CalibrationMaster:
    """Integrate `sources` into a master of `kind` (bias, dark, darkflat, flat).

    Bias, dark and dark flat are combined without normalisation or pre-calibration.  Flats are
    each calibrated first, with `darkflat` (preferred), or `dark` scaled by exposure with `bias`
    (CCD with long flats), or `bias`; then multiplicatively normalised and combined.  Masters
    may be given as paths, MasterFrame or Master.  Other keywords go to `combine`.
    """
    if kind not in MASTER_KINDS:
        raise ConfigError(f"unknown master kind {kind!r}; choose one of {', '.join(MASTER_KINDS)}")
    if not sources:
        raise ConfigError(f"no frames for the master {kind}; give at least one FITS file")
    extra = fits.Header()
    user_header = combine_kwargs.pop("header", None)
    issues: list[QualityIssue] = []
    first_data, first_header = _read_source(sources[0])
    full = quality.full_scale(first_data, first_header)
    if full is not None:
        extra["DATAMAX"] = (full, "full scale of the source data range (ADU)")

    if kind != "flat":
        if darkflat is not None or bias is not None or dark is not None:
            raise ConfigError(
                f"a master {kind} is integrated from raw frames only; drop --darkflat/--bias/--dark "
                "(pre-calibrating darks truncates them)"
            )
        combine_kwargs.setdefault("normalize", "none")
        if combine_kwargs["normalize"] != "none":
            raise ConfigError(f"a master {kind} is not normalised; drop --normalize")
        extra.add_history("no pre-calibration: the bias pedestal is kept, nothing truncated")
        master = combine(list(sources), frame_type=kind, header=_merge(extra, user_header), **combine_kwargs)
        data = master.data
        defects = None
        issues += quality.check_light_leak([_series_sample(src) for src in sources])
        if kind in ("dark", "darkflat"):
            quality.check_dark_pedestal(data, what=f"master {kind}")
            defects, stats = cosmetic.find_defects(data, None, cosmetic.cfa_pattern(master.header))
            master.header["NHOTPIX"] = (stats.hot, "hot pixels in the defect map")
            master.header["NCOLDPIX"] = (stats.cold, "cold pixels in the defect map")
            if kind == "dark":
                issues += quality.check_master_dark(stats.hot, quality.exposure_of(master.header))
        return _finish(master, defects, issues, kind)

    return _build_flat(
        sources,
        (first_data, first_header),
        full,
        darkflat,
        bias,
        dark,
        extra,
        user_header,
        issues,
        combine_kwargs,
    )


def _build_flat(
    sources: Sequence[Source],
    first: tuple[np.ndarray, fits.Header],
    full: int | None,
    darkflat: Any,
    bias: Any,
    dark: Any,
    extra: fits.Header,
    user_header: fits.Header | None,
    issues: list[QualityIssue],
    combine_kwargs: dict[str, Any],
) -> CalibrationMaster:
    mdf = as_master(darkflat, "darkflat")
    mb = as_master(bias, "bias")
    md = as_master(dark, "dark")
    if mdf is None and mb is None and md is None:
        raise ConfigError(
            "flats must be calibrated before they are combined, or the vignetting correction is wrong; "
            "give the master dark flat (--darkflat F) or the master bias (--bias F)"
        )
    first_header = first[1]
    flat_exp = quality.exposure_of(first_header)
    if mdf is not None:
        method = "darkflat"
        offset = mdf.data.astype(np.float32)
        used = [mdf]
        issues += quality.check_exposure(first_header, mdf.header, "master dark flat")
    elif md is not None:
        if mb is None:
            method = "dark"
            offset = md.data.astype(np.float32)
            issues += quality.check_exposure(first_header, md.header, "master dark")
            used = [md]
        else:
            dark_exp = quality.exposure_of(md.header)
            if flat_exp is None or not dark_exp:
                raise ConfigError(
                    "scaling a master dark to the flats needs EXPTIME in both headers; "
                    "give a master dark flat instead"
                )
            k = flat_exp / dark_exp
            method = "bias+scaled dark"
            offset = (mb.data + np.float32(k) * (md.data - mb.data)).astype(np.float32)
            extra["FLATDK"] = (k, "dark scale factor used on the flats")
            used = [mb, md]
    else:
        assert mb is not None
        method = "bias"
        offset = mb.data.astype(np.float32)
        used = [mb]
    for m in used:
        quality.check_bit_depth(full, quality.full_scale(m.data, m.header), f"{m.name} ({m.kind})")
        if m.kind == "dark" or m.kind == "darkflat":
            quality.check_dark_pedestal(
                m.data, bias=mb.data if mb is not None and m is not mb else None, what=m.name
            )
    extra["FLATCAL"] = (method, "flats calibrated with this before combining")
    for m in used:
        extra.add_history(f"flats calibrated with {m.kind}: {m.name}")

    combine_kwargs.setdefault("normalize", "multiplicative")
    if combine_kwargs["normalize"] != "multiplicative":
        raise ConfigError("flats are normalised multiplicatively; drop --normalize")
    mem_mb = int(combine_kwargs.get("mem_limit_mb", 400))
    workdir = combine_kwargs.pop("workdir", None)
    n = len(sources)
    frame_bytes = offset.size * 4
    levels: list[float] = []
    level_issues: dict[str, int] = {}

    def calibrated(i: int) -> tuple[np.ndarray, fits.Header]:
        data, header = first if i == 0 else _read_source(sources[i])
        quality.check_geometry(data, header, offset, used[0].header, used[0].name)
        if i > 0 and quality.full_scale(data, header) != full:
            raise quality.BitDepthMismatch(
                f"flat {_label(sources[i])} differs in data range from "
                f"{_label(sources[0])}; combine flats of one camera mode"
            )
        for issue in quality.check_flat_level(data, full):
            level_issues[issue.check] = level_issues.get(issue.check, 0) + 1
            if issue.check == "flat-level":
                levels.append(float(np.mean(data, dtype=np.float64)) / (full or 65535))
        out = np.asarray(data, np.float32) - offset  # float32 holds any 16-bit difference exactly
        return out, header

    original = [source_of(s) for s in sources]
    extra["SRCHASH"] = source_hash(original)
    header = _merge(_copy_keys(first_header), _merge(extra, user_header))
    if n * frame_bytes <= mem_mb * 2**20 // 4:  # leave combine most of the budget
        arrays = [calibrated(i)[0] for i in range(n)]
        master = combine(arrays, frame_type="flat", header=header, **combine_kwargs)
    else:
        # calibrated flats go to float32 files that combine streams: memory stays one frame
        with tempfile.TemporaryDirectory(prefix="obsagent-flats-", dir=workdir) as tmp:
            paths = []
            for i in range(n):
                data, hdr = calibrated(i)
                paths.append(write_fits_atomic(Path(tmp) / f"flat{i:04d}.fits", data, hdr))
                del data
            master = combine(paths, frame_type="flat", header=header, **combine_kwargs)
            master.header["SRCHASH"] = extra["SRCHASH"]
    _rename_sources(master.header, [_label(s) for s in sources])
    for check, count in level_issues.items():
        if check == "flat-level":
            what = (
                f"mean {100 * min(levels):.0f}-{100 * max(levels):.0f} % of full scale "
                f"(want {100 * quality.FLAT_LEVEL[0]:.0f}-{100 * quality.FLAT_LEVEL[1]:.0f} %); "
                "adjust the exposure or the panel brightness"
            )
        else:
            what = "too many saturated pixels; shorten the exposure"
        issues.append(QualityIssue(check, f"{count} of {n} flats: {what}"))
    cfa = cosmetic.cfa_pattern(master.header)
    _record_flat_means(master.header, master.data, cfa)
    defects, stats = cosmetic.find_defects(None, master.data, cfa)
    master.header["NCOLDPIX"] = (stats.cold, "cold/dead pixels in the defect map")
    issues += [i for i in quality.check_master_flat(master.data) if i.check != "flat-uncalibrated"]
    return _finish(master, defects, issues, "flat")


def _finish(
    master: Master, defects: np.ndarray | None, issues: list[QualityIssue], kind: str
) -> CalibrationMaster:
    master.header["IMAGETYP"] = (MASTER_TYPES[kind], "master frame type")
    for issue in issues:
        log.warning("%s", issue)
        master.header.add_history(f"WARNING {issue}")
    return CalibrationMaster(
        master.data,
        master.header,
        master.frames,
        master.rejection_low,
        master.rejection_high,
        defects,
        issues,
    )


def _record_flat_means(header: fits.Header, data: np.ndarray, cfa: str | None) -> None:
    header["FLATMEAN"] = (float(np.mean(data, dtype=np.float64)), "mean of the master flat")
    if cfa is None:
        return
    for colour, means in channel_means(data, cfa).items():
        header[f"FLATM{colour}"] = (means, f"mean of the master flat, CFA {colour}")


def channel_means(data: np.ndarray, cfa: str) -> dict[str, float]:
    """Mean of each CFA colour (the two greens together)."""
    sums: dict[str, list[np.ndarray]] = {}
    for colour, parities in cosmetic.cfa_channels(cfa).items():
        sums[colour] = [data[r::2, c::2] for r, c in parities]
    return {
        c: float(np.mean(np.concatenate([p.ravel() for p in parts]), dtype=np.float64))
        for c, parts in sums.items()
    }


def _series_sample(item: Source, rows: int = 64) -> quality.SeriesFrame:
    """Level and noise of one frame of a dark/bias series from a few evenly spaced rows."""
    if isinstance(item, np.ndarray):
        return quality.series_frame(item)
    fs = source_of(item)
    h, w = fs.shape
    picks = np.unique(np.linspace(0, h - 1, min(rows, h)).astype(int))
    sample = np.empty((picks.size, w), np.float64)
    raw = np.empty((1, w), fs.stored_dtype)
    for j, r in enumerate(picks):
        fs.read_rows(int(r), int(r) + 1, raw)
        sample[j] = raw[0].astype(np.float64) * fs.bscale + fs.bzero  # stored dtype is big-endian: decoded here
    return quality.series_frame(sample, fs.header)


def _read_source(item: Source) -> tuple[np.ndarray, fits.Header]:
    if isinstance(item, np.ndarray):
        return item, fits.Header()
    return read_fits(item)


def _label(item: Source) -> str:
    return Path(item).name if isinstance(item, str | os.PathLike) else "<array>"


def _copy_keys(header: fits.Header) -> fits.Header:
    from agent.stacking.combine import _COPY_KEYS

    out = fits.Header()
    for key in _COPY_KEYS:
        if key in header:
            out[key] = (header[key], header.comments[key])
    for key in ("ADCBITS", "XBAYROFF", "YBAYROFF"):
        if key in header:
            out[key] = (header[key], header.comments[key])
    return out


def _merge(a: fits.Header, b: fits.Header | None) -> fits.Header:
    out = a.copy()
    if b is not None:
        for card in b.cards:
            if card.keyword == "HISTORY":
                out.add_history(str(card.value))
            elif card.keyword == "COMMENT":
                out.add_comment(str(card.value))
            else:
                out[card.keyword] = (card.value, card.comment)
    return out


def _rename_sources(header: fits.Header, names: list[str]) -> None:
    """combine saw calibrated arrays; name the original files in its per-source HISTORY lines."""
    history = [str(v) for v in header.get("HISTORY", [])]
    if not history:
        return
    del header["HISTORY"]
    for line in history:
        if line.startswith("src "):
            idx = line[4:].split(":", 1)[0]
            rest = line.split(":", 1)[1].strip()
            if idx.isdigit() and int(idx) < len(names):
                for old in (f"array {idx}", f"flat{int(idx):04d}.fits"):
                    if rest.startswith(old):
                        line = f"src {idx}: {names[int(idx)]}{rest[len(old) :]}"
        header.add_history(line)


# --- light calibration ------------------------------------------------------------------------


@dataclass
class MasterSet:
    """The masters for one configuration; preparation (defects, flat scale) is cached here."""

    bias: Any = None
    dark: Any = None
    flat: Any = None
    _prepared: dict[tuple[object, ...], _Plan] = field(default_factory=dict, repr=False, init=False)

    def __post_init__(self) -> None:
        self.bias = as_master(self.bias, "bias")
        self.dark = as_master(self.dark, "dark")
        self.flat = as_master(self.flat, "flat")


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
        return write_fits_atomic(path, np.asarray(self.data, np.float32), self.header)


@dataclass
class _Plan:
    """Everything about the masters that does not depend on the light, computed once."""

    offset: np.ndarray | None  # MD (matched) or MB
    thermal: np.ndarray | None  # MD - MB for scaling
    flat_scale: np.ndarray | None  # s0 / MF (0 where MF <= 0)
    s0: dict[str, float]
    defects: np.ndarray | None
    issues: list[QualityIssue]
    defect_ys: np.ndarray | None = None  # the defect pixels, listed once
    defect_xs: np.ndarray | None = None
    flat_blocks: np.ndarray | None = None  # large-scale shape of the flat (residual vignetting check)
    optimizer: DarkOptimizer | None = None


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
        data, header = read_fits(light)
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
        if options.dark_optimize or (kind == "ccd" and not matched):
            if mb is None:
                raise ConfigError(
                    "scaling the master dark needs the master bias; give --bias F "
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
    plan = _plan(masters, options, scaled, light_full, cfa)
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


def _plan(
    masters: MasterSet, options: CalibrationOptions, scaled: bool, light_full: int, cfa: str | None
) -> _Plan:
    key = (scaled, options.cfa_separate, options.rescale_bit_depth, options.cosmetic, light_full, cfa)
    if key in masters._prepared:
        return masters._prepared[key]
    issues: list[QualityIssue] = []
    md, mb, mf = masters.dark, masters.bias, masters.flat

    def ranged(m: MasterFrame) -> np.ndarray:
        factor = quality.check_bit_depth(
            light_full,
            quality.full_scale(m.data, m.header),
            f"{m.name} ({m.kind})",
            rescale=options.rescale_bit_depth,
        )
        if factor != 1.0:
            issues.append(QualityIssue("bit-depth", f"{m.name} rescaled by {factor:g} to the light's range"))
            return (m.data * np.float32(factor)).astype(np.float32)
        return np.ascontiguousarray(m.data, np.float32)

    bias = ranged(mb) if mb is not None else None
    dark = ranged(md) if md is not None else None
    if dark is not None:
        assert md is not None
        quality.check_dark_pedestal(dark, bias=bias, what=md.name)
        issues += quality.check_master_dark(
            int(md.header.get("NHOTPIX", -1)) if "NHOTPIX" in md.header else -1,
            quality.exposure_of(md.header),
        )
    offset: np.ndarray | None
    thermal = None
    if scaled:
        assert bias is not None and dark is not None
        offset = bias
        thermal = (dark - bias).astype(np.float32)
    else:
        offset = dark if dark is not None else bias

    flat_scale = None
    s0: dict[str, float] = {}
    if mf is not None:
        f = ranged(mf)
        issues += [i for i in quality.check_master_flat(f, mf.header) if i.check != "flat-nonpositive"]
        good = f > 0
        flat_scale = np.zeros(f.shape, np.float32)
        if cfa is not None and options.cfa_separate:
            for colour, parities in cosmetic.cfa_channels(cfa).items():
                vals = np.concatenate([f[r::2, c::2][good[r::2, c::2]] for r, c in parities])
                s0[colour] = float(vals.mean(dtype=np.float64))
                for r, c in parities:
                    sub, g = f[r::2, c::2], good[r::2, c::2]
                    view = flat_scale[r::2, c::2]
                    view[g] = s0[colour] / sub[g]
        else:
            s0["all"] = float(f[good].mean(dtype=np.float64))
            flat_scale[good] = s0["all"] / f[good]
    defects = ys = xs = None
    if options.cosmetic:
        defects = _defect_map(md, mf, cfa)
        if defects is not None:
            ys, xs = (a.astype(np.int64) for a in np.nonzero(defects))
    flat_blocks = quality.block_medians(mf.data) if mf is not None else None
    plan = _Plan(offset, thermal, flat_scale, s0, defects, issues, ys, xs, flat_blocks)
    masters._prepared[key] = plan
    return plan


def _defect_map(md: MasterFrame | None, mf: MasterFrame | None, cfa: str | None) -> np.ndarray | None:
    """Union of the masters' stored defect maps; computed from the data when a master has none."""
    maps = []
    for m in (md, mf):
        if m is None:
            continue
        if m.defects is None:
            found, _ = cosmetic.find_defects(
                m.data if m.kind == "dark" else None, m.data if m.kind == "flat" else None, cfa
            )
            m.defects = found
        maps.append(m.defects)
    if not maps:
        return None
    out = maps[0].copy()
    for extra in maps[1:]:
        out[out == 0] = extra[out == 0]
    return out


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


__all__ = [
    "CalibratedLight",
    "CalibrationMaster",
    "CalibrationOptions",
    "MasterFrame",
    "MasterSet",
    "build_master",
    "calibrate",
    "channel_means",
    "load_master",
]
