"""Streaming master building: `combine(frames) -> Master`.

The image is processed in row bands.  Each frame's band is read once (one `preadv` per frame
and band) into a preallocated buffer while the kernel stacks the previous band (double
buffering; the kernel releases the GIL), so memory is bounded by `mem_limit_mb` whatever the
number of frames, and no file is read twice except a small row sample when normalisation needs
the frame statistics before stacking.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
from astropy.io import fits

from agent import __version__
from agent.errors import ConfigError
from agent.fitsfile import write_fits_atomic
from agent.stacking import kernels, products, rejection
from agent.stacking.frames import FrameSource, check_consistent, source_of
from agent.stacking.normalize import NORMALIZATIONS, Normalization, normalization_factors
from agent.stacking.stats import SampleStats, gesd_critical_values, per_frame, sample_stats

log = logging.getLogger(__name__)

METHODS = ("auto", "none", "percentile", "sigma", "mad", "avgsigma", "winsorized", "linearfit", "gesd")
COMBINES = ("mean", "median")
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "percentile": (0.2, 0.1),
    "sigma": (3.0, 3.0),
    "mad": (3.0, 3.0),
    "avgsigma": (3.0, 3.0),
    "winsorized": (3.0, 3.0),
    "linearfit": (5.0, 5.0),
    "gesd": (0.3, 0.05),  # (outlier fraction, alpha)
}
MIN_FRAMES = {
    "sigma": 3,
    "mad": 3,
    "avgsigma": 3,
    "winsorized": 3,
    "percentile": 3,
    "linearfit": 5,
    "gesd": 3,
}
MASTER_TYPES = {
    "bias": "Master Bias",
    "dark": "Master Dark",
    "flat": "Master Flat",
    "darkflat": "Master Dark Flat",
    "light": "Master Light",
}
_COPY_KEYS = (
    "INSTRUME", "TELESCOP", "OBSERVER", "SITENAME", "EXPTIME", "EXPOSURE", "GAIN", "OFFSET", "EGAIN",
    "CCD-TEMP", "SET-TEMP", "XBINNING", "YBINNING", "XPIXSZ", "YPIXSZ", "PIXSIZE1", "PIXSIZE2",
    "BAYERPAT", "XBAYROFF", "YBAYROFF", "FILTER", "READMODE", "FOCALLEN", "ROWORDER",
)  # fmt: skip
SAMPLE_MAX_PIXELS = 131_072
_BAND_MAX_ROWS = 256
_BAND_MAX_BYTES = 24 * 2**20  # per band buffer: larger bands only cost memory, not time
_RESERVE = 8 * 2**20


class MemoryLimitTooSmall(ConfigError):
    """mem_limit cannot hold even one row of every frame."""


@dataclass
class FrameStats:
    """What one input frame contributed: its statistics, normalisation and rejected fractions."""

    path: str | None
    location: float  # median (sampled rows when the frame is large)
    scale: float  # 1.4826 * MAD
    noise: float  # pixel noise from same-colour neighbour differences
    norm_factor: float
    rejected_low: float  # fraction of this frame's pixels rejected as low
    rejected_high: float
    norm_offset: float = 0.0
    sample_pixels: int = 0


@dataclass
class Master:
    """A combined frame with its provenance header, per-frame statistics and rejection maps."""

    data: np.ndarray
    header: fits.Header
    frames: list[FrameStats] = field(default_factory=list)
    rejection_low: np.ndarray | None = None  # number of values rejected low, per pixel
    rejection_high: np.ndarray | None = None

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically as a product (float32 ADU / 65535 with ADUSCALE, `products.py`), the form
        Siril and PixInsight read without rescaling; rejection maps go beside it as NAME_rejlow/_rejhigh.fits."""
        target = products.write_product(path, self.data, self.header)
        for suffix, rmap in (("rejlow", self.rejection_low), ("rejhigh", self.rejection_high)):
            if rmap is not None:
                hdr = fits.Header()
                hdr["IMAGETYP"] = (f"Rejection map {suffix[3:]}", "values rejected per pixel")
                hdr["NCOMBINE"] = self.header.get("NCOMBINE")
                write_fits_atomic(target.with_name(f"{target.stem}_{suffix}{target.suffix}"), rmap, hdr)
        return target


def resolve_method(method: str, n_frames: int) -> str:
    """`auto` by frame count: < 7 percentile, 7-10 avgsigma, 11-25 winsorized, > 25 linearfit."""
    if method != "auto":
        return method
    if n_frames < 7:
        return "percentile"
    if n_frames <= 10:
        return "avgsigma"
    if n_frames <= 25:
        return "winsorized"
    return "linearfit"


def combine(
    sources: Sequence[str | os.PathLike[str] | np.ndarray],
    *,
    method: str = "auto",
    low: float | None = None,
    high: float | None = None,
    combine: str = "mean",
    normalize: str = "none",
    mem_limit_mb: int = 400,
    threads: int | None = None,
    frame_type: str | None = None,
    rejection_maps: bool = False,
    progress: Callable[[float], None] | None = None,
    header: fits.Header | None = None,
    band_rows: int | None = None,
) -> Master:
    """Stack frames with pixel rejection into a float32 master.

    `low`/`high` are the method's thresholds (for gesd: outlier fraction and alpha); None takes
    the method's default.  Frames that disagree in size, bit depth or binning raise FrameMismatch.
    `band_rows` caps the rows per band below what the memory limit allows (tests, tuning).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown rejection {method!r}; choose one of {', '.join(METHODS)}")
    if combine not in COMBINES:
        raise ConfigError(f"unknown combination {combine!r}; choose mean or median")
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalisation {normalize!r}; choose one of {', '.join(NORMALIZATIONS)}")
    if frame_type is not None and frame_type not in MASTER_TYPES:
        raise ConfigError(f"unknown frame type {frame_type!r}; choose one of {', '.join(MASTER_TYPES)}")
    if not sources:
        raise ConfigError("no frames to stack; give at least one FITS file")

    frames = [source_of(s) for s in sources]
    check_consistent(frames)
    n = len(frames)
    rows, cols = frames[0].shape
    rej = resolve_method(method, n)
    kl, kh = DEFAULT_THRESHOLDS[rej]
    kl = kl if low is None else float(low)
    kh = kh if high is None else float(high)
    if rej == "gesd" and not (0.0 < kl < 1.0 and 0.0 < kh < 1.0):
        raise ConfigError("gesd takes --low as the outlier fraction and --high as alpha, both in (0, 1)")
    if n < MIN_FRAMES.get(rej, 0):
        log.warning(
            "%s rejection needs at least %d frames; %d frames are combined without rejection",
            rej,
            MIN_FRAMES[rej],
            n,
        )

    # --- memory plan ---------------------------------------------------------------------
    band_kind = _band_kind(frames)
    itemsize = np.dtype(band_kind).itemsize
    budget = mem_limit_mb * 1024 * 1024
    fixed = rows * cols * 4 + _RESERVE  # the master itself, and room for small temporaries
    if rejection_maps:
        fixed += 2 * rows * cols * 2
    sample_pixels = min(SAMPLE_MAX_PIXELS, max(cols, (budget // 10) // (n * 4)))
    sample_rows = _sample_rows(rows, cols, sample_pixels)
    fixed += n * len(sample_rows) * cols * 4
    per_row = 2 * n * cols * itemsize + cols * 4 * (0 if rejection_maps else 1) + n * 2 * 8
    fit_rows = (budget - fixed) // per_row if budget > fixed else 0
    if fit_rows < 1:
        need = math.ceil((fixed + per_row) / 2**20)
        raise MemoryLimitTooSmall(
            f"mem_limit {mem_limit_mb} MB cannot hold one row of {n} frames; use at least {need}"
        )
    cap = _BAND_MAX_ROWS if band_rows is None else max(1, band_rows)
    cap = min(cap, max(1, _BAND_MAX_BYTES // (n * cols * itemsize)))
    band_rows = int(min(cap, rows, fit_rows))

    # --- statistics and normalisation ----------------------------------------------------
    gain0 = np.array([_decode_gain(f) for f in frames])
    off0 = np.array([_decode_offset(f) for f in frames])
    samples: list[np.ndarray] | None = None
    stats: list[SampleStats]
    if normalize != "none":
        stats = per_frame(
            lambda fgo: sample_stats(_read_sample(fgo[0], sample_rows, fgo[1], fgo[2])),
            list(zip(frames, gain0, off0, strict=True)),
            threads,
        )
    else:
        samples = [np.empty((len(sample_rows), cols), np.float32) for _ in frames]
        stats = []
    norms: list[Normalization] = (
        normalization_factors(normalize, stats, [f.label for f in frames])
        if stats
        else [Normalization(1.0, 0.0) for _ in frames]
    )
    gain = gain0 * np.array([nm.factor for nm in norms])
    offset = off0 * np.array([nm.factor for nm in norms]) + np.array([nm.offset for nm in norms])

    code = rejection.METHOD_CODES[rej]
    pa, pb = kernels.sort_network(n)
    crit = gesd_critical_values(n, kl, kh) if rej == "gesd" else np.zeros((1, 1))
    out = np.empty((rows, cols), np.float32)
    rej_low = np.zeros((rows, cols), np.uint16) if rejection_maps else None
    rej_high = np.zeros((rows, cols), np.uint16) if rejection_maps else None
    scratch_low = None if rejection_maps else np.empty((band_rows, cols), np.uint16)
    scratch_high = None if rejection_maps else np.empty((band_rows, cols), np.uint16)
    frame_counts = np.zeros((n, 2), np.int64)
    buffers: list[np.ndarray] = [np.empty((n, band_rows, cols), band_kind) for _ in range(2)]
    bands = [(r0, min(rows, r0 + band_rows)) for r0 in range(0, rows, band_rows)]
    sample_index = {r: i for i, r in enumerate(sample_rows)}

    def band_view(b: int) -> np.ndarray:
        """Band b's rows of its buffer as one contiguous block: a short last band keeps the kernels'
        C-contiguous signature (a strided view would compile a second one at the first user's run)."""
        r0, r1 = bands[b]
        return buffers[b % 2].reshape(-1)[: n * (r1 - r0) * cols].reshape(n, r1 - r0, cols)

    def load(b: int) -> None:
        r0, r1 = bands[b]
        buf = band_view(b)
        for i, fr in enumerate(frames):
            _read_band(fr, r0, r1, buf[i], band_kind)
            if samples is not None:
                for r in range(r0, r1):
                    j = sample_index.get(r)
                    if j is not None:
                        samples[i][j] = _decode_rows(buf[i, r - r0], band_kind, gain0[i], off0[i])

    previous_threads = numba.get_num_threads()
    if threads is not None:
        max_threads = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        numba.set_num_threads(max(1, min(int(threads), max_threads)))
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="band-reader") as reader:
            pending: Future[None] = reader.submit(load, 0)
            for b, (r0, r1) in enumerate(bands):
                pending.result()
                if b + 1 < len(bands):
                    pending = reader.submit(load, b + 1)
                buf = band_view(b)
                lo_map = rej_low[r0:r1] if rej_low is not None else scratch_low[: r1 - r0]  # type: ignore[index]
                hi_map = rej_high[r0:r1] if rej_high is not None else scratch_high[: r1 - r0]  # type: ignore[index]
                fcounts = np.zeros((r1 - r0, n, 2), np.int64)
                stack_band = kernels.stack_band_u16 if band_kind == np.uint16 else kernels.stack_band_float
                stack_band(
                    buf, gain, offset, pa, pb, code, kl, kh, crit, combine == "median",
                    out[r0:r1], lo_map, hi_map, fcounts,
                )
                frame_counts += fcounts.sum(axis=0)
                if progress is not None:
                    progress(r1 / rows)
    finally:
        numba.set_num_threads(previous_threads)
    buffers.clear()
    if not np.isfinite(out).any():
        # the kernels skip NaN and inf; a master with no value left is no master
        raise ConfigError(
            f"every pixel of the {n} frames is NaN or infinite ({frames[0].label}, ...): there is nothing to "
            "stack; check how these files were written"
        )

    if samples is not None:
        stats = per_frame(sample_stats, samples, threads)
    npix = rows * cols
    frame_stats = [
        FrameStats(
            path=f.path,
            location=st.location,
            scale=st.scale,
            noise=st.noise,
            norm_factor=nm.factor,
            rejected_low=frame_counts[i, 0] / npix,
            rejected_high=frame_counts[i, 1] / npix,
            norm_offset=nm.offset,
            sample_pixels=st.pixels,
        )
        for i, (f, st, nm) in enumerate(zip(frames, stats, norms, strict=True))
    ]
    hdr = _provenance(frames, frame_stats, rej, kl, kh, combine, normalize, frame_type, header)
    return Master(out, hdr, frame_stats, rej_low, rej_high)


# --- helpers -----------------------------------------------------------------------------


def _band_kind(frames: list[FrameSource]) -> type:
    """Kernel input type: 16-bit and 8-bit integers stay raw 16-bit words; everything else float64
    (also when a frame with masked pixels is held as floats with NaN)."""
    if all(f.bitpix in (8, 16) for f in frames):
        return np.uint16
    return np.float64


def _decode_gain(f: FrameSource) -> float:
    return 1.0 if f.array is not None else f.bscale


def _decode_offset(f: FrameSource) -> float:
    """Offset of value = u * gain + offset, u being the kernel's decoded word (stored int16 + 32768)."""
    if f.array is not None:
        return -32768.0 if f.array.dtype == np.int16 else 0.0
    if f.bitpix == 16:
        return f.bzero - 32768.0 * f.bscale
    return f.bzero


def _to_fits_words(u: np.ndarray) -> np.ndarray:
    """Unsigned words u as the kernel's raw input: big-endian with the sign bit flipped (FITS uint16)."""
    return (u.astype(np.uint16) ^ np.uint16(0x8000)).byteswap()


def _read_band(fr: FrameSource, r0: int, r1: int, dest: np.ndarray, band_kind: type) -> None:
    """Read rows r0:r1 of one frame into dest (kernel layout, see `_band_kind`)."""
    stored = fr.stored_dtype
    if band_kind == np.uint16:
        if fr.array is None and fr.bitpix == 16:
            fr.read_rows(r0, r1, dest)  # raw big-endian words, decoded in the kernel
        elif fr.array is None:  # 8-bit FITS
            tmp = np.empty((r1 - r0, fr.shape[1]), stored)
            fr.read_rows(r0, r1, tmp)
            dest[...] = _to_fits_words(tmp)
        elif fr.array.dtype == np.int16:
            dest[...] = fr.array[r0:r1].view(np.uint16).byteswap()
        else:
            dest[...] = _to_fits_words(fr.array[r0:r1])
        return
    if fr.array is not None:
        dest[...] = fr.array[r0:r1]
    else:
        tmp = np.empty((r1 - r0, fr.shape[1]), stored)
        fr.read_rows(r0, r1, tmp)
        dest[...] = tmp  # astype from big-endian: one converting copy
    if (fr.array is None and fr.bitpix == 16) or (fr.array is not None and fr.array.dtype == np.int16):
        dest += 32768.0  # 16-bit words as the u16 kernel sees them (see `_decode_offset`)


def _decode_rows(raw: np.ndarray, band_kind: type, gain: float, offset: float) -> np.ndarray:
    """Physical values of rows held in kernel layout (for the statistics sample)."""
    if band_kind == np.uint16:
        u = raw.byteswap() ^ np.uint16(0x8000)
        return u.astype(np.float64) * gain + offset
    return raw.astype(np.float64) * gain + offset


def _sample_rows(rows: int, cols: int, max_pixels: int) -> list[int]:
    """Every k-th row, so that the sample holds at most max_pixels (all rows when the frame is small)."""
    max_rows = max(1, max_pixels // cols)
    stride = max(1, math.ceil(rows / max_rows))
    return list(range(0, rows, stride))


def _read_sample(fr: FrameSource, sample_rows: list[int], gain: float, offset: float) -> np.ndarray:
    kind = _band_kind([fr])
    out = np.empty((len(sample_rows), fr.shape[1]), np.float64)
    row: np.ndarray = np.empty((1, fr.shape[1]), kind)
    for j, r in enumerate(sample_rows):
        _read_band(fr, r, r + 1, row, kind)
        out[j] = _decode_rows(row[0], kind, gain, offset)
    return out


def source_hash(frames: Sequence[FrameSource]) -> str:
    """SHA-256 over the source list (resolved path, size, mtime; arrays by content), in stacking order."""
    h = hashlib.sha256()
    for f in frames:
        if f.path is not None:
            st = os.stat(f.path)
            h.update(f"{Path(f.path).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        elif f.array is not None:
            h.update(hashlib.sha256(np.ascontiguousarray(f.array).tobytes()).digest())
    return h.hexdigest()


def _infer_type(hdr: fits.Header) -> str | None:
    text = str(hdr.get("IMAGETYP", hdr.get("FRAME", ""))).lower()
    if "bias" in text or "offset" in text:
        return "bias"
    if "dark" in text and "flat" in text:
        return "darkflat"
    if "dark" in text:
        return "dark"
    if "flat" in text:
        return "flat"
    if "light" in text:
        return "light"
    return None


def _provenance(
    frames: list[FrameSource],
    stats: list[FrameStats],
    rej: str,
    kl: float,
    kh: float,
    combine: str,
    normalize: str,
    frame_type: str | None,
    extra: fits.Header | None,
) -> fits.Header:
    first = frames[0].header
    hdr = fits.Header()
    for key in _COPY_KEYS:
        if key in first:
            hdr[key] = (first[key], first.comments[key])
    kind = frame_type or _infer_type(first)
    hdr["IMAGETYP"] = (MASTER_TYPES.get(kind or "", "Master"), "master frame type")
    hdr["NCOMBINE"] = (len(frames), "number of frames combined")
    hdr["REJECT"] = (rej, "pixel rejection method")
    if rej == "gesd":
        hdr["REJ_LOW"] = (kl, "GESD max outlier fraction")
        hdr["REJ_HIGH"] = (kh, "GESD significance alpha")
    else:
        hdr["REJ_LOW"] = (kl, "low rejection threshold")
        hdr["REJ_HIGH"] = (kh, "high rejection threshold")
    hdr["COMBINE"] = (combine, "combination of kept values")
    hdr["NORMALIZ"] = (normalize, "normalisation before rejection")
    total = len(frames) * frames[0].shape[0] * frames[0].shape[1]
    lo = sum(s.rejected_low * frames[0].shape[0] * frames[0].shape[1] for s in stats)
    hi = sum(s.rejected_high * frames[0].shape[0] * frames[0].shape[1] for s in stats)
    hdr["REJFRLO"] = (round(lo / total, 8), "fraction of values rejected low")
    hdr["REJFRHI"] = (round(hi / total, 8), "fraction of values rejected high")
    hdr["SRCHASH"] = source_hash(frames)  # SHA-256 of the source list; no room left for a comment
    hdr["DATE"] = (_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "UTC creation time")
    hdr["SWVERS"] = (f"obsagent {__version__}", "software that built the master")
    hdr["STATSAMP"] = (stats[0].sample_pixels if stats else 0, "pixels per frame behind the frame statistics")
    for i, (f, s) in enumerate(zip(frames, stats, strict=True)):
        name = Path(f.path).name if f.path else f"array {i}"
        hdr.add_history(
            f"src {i}: {name} med={s.location:.6g} norm={s.norm_factor:.6g}+{s.norm_offset:.6g} "
            f"rej={s.rejected_low:.4g}/{s.rejected_high:.4g}"
        )
    if extra is not None:
        for card in extra.cards:
            if card.keyword in ("HISTORY", "COMMENT"):
                hdr.add_history(str(card.value)) if card.keyword == "HISTORY" else hdr.add_comment(
                    str(card.value)
                )
            else:
                hdr[card.keyword] = (card.value, card.comment)
    return hdr
