"""Master recipes: how each kind of master is integrated from its frames.

Bias, dark and dark flat are plain integrations (the dark keeps its bias pedestal, so nothing is
ever truncated); a flat is integrated only after each frame is calibrated with the master dark
flat (preferred) or bias, then normalised multiplicatively.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from agent.errors import ConfigError
from agent.fitsfile import write_fits_atomic
from agent.stacking import cosmetic, products, quality
from agent.stacking.combine import MASTER_TYPES, Master, combine, source_hash
from agent.stacking.frames import source_of
from agent.stacking.masters import CalibrationMaster, as_master
from agent.stacking.quality import QualityIssue
from agent.stacking.stats import per_frame

log = logging.getLogger(__name__)

MASTER_KINDS = ("bias", "dark", "darkflat", "flat")

Source = str | os.PathLike[str] | np.ndarray


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
        del first_data  # not held while combine streams the frames
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
        issues += quality.check_light_leak(per_frame(_series_sample, sources, combine_kwargs.get("threads")))
        if kind in ("dark", "darkflat"):
            quality.check_dark_pedestal(data, what=f"master {kind}")
            defects, stats = cosmetic.find_defects(data, None, cosmetic.cfa_pattern(master.header))
            master.header["NHOTPIX"] = (stats.hot, "hot pixels in the defect map")
            master.header["NCOLDPIX"] = (stats.cold, "cold pixels in the defect map")
            if kind == "dark":
                issues += quality.check_master_dark(stats.hot, quality.exposure_of(master.header))
        return _finish(master, defects, issues, kind, _source_headers(sources))

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
    return _finish(master, defects, issues, "flat", [fs.header for fs in original if fs.path is not None])


def _finish(
    master: Master,
    defects: np.ndarray | None,
    issues: list[QualityIssue],
    kind: str,
    source_headers: list[fits.Header],
) -> CalibrationMaster:
    master.header["IMAGETYP"] = (MASTER_TYPES[kind], "master frame type")
    products.master_keywords(master.header, source_headers)
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
    return products.read_product(item)  # raw frames as stored


def _source_headers(sources: Sequence[Source]) -> list[fits.Header]:
    """The headers of the file sources (for the master's dates and summed exposure)."""
    return [source_of(s).header for s in sources if not isinstance(s, np.ndarray)]


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


__all__ = ["MASTER_KINDS", "build_master", "channel_means"]
