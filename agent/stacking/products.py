"""Products on disk: masters and calibrated lights as Siril and PixInsight read them.

Both programs take floating-point pixels to lie in [0, 1]: Siril divides float data by 65535 only
when DATAMAX (or, without it, the data's maximum) is above 1 or 2 (10 in later versions), and
PixInsight rescales out-of-range float images by their own extremes, frame by frame. So a product
is written as float32 ADU / 65535 (the scale Siril gives 16-bit frames), with ADUSCALE recording
the factor and ADUFULL the ADU full scale (DATAMAX is left out: Siril would rescale by it).

In memory everything stays in ADU (header DATAMAX = full scale in ADU): `read_product` turns a
file of either form back into that, so masters written before this form (ADU floats, the defect
map as a DEFECTS extension) keep working. A master's defect map is its own file beside it,
`<master>.defects.fits`, since Siril takes a second image HDU for a sequence and warns.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from astropy.io import fits

from agent.errors import CorruptFile
from agent.fitsfile import read_fits, read_header, write_fits_atomic
from agent.stacking.quality import exposure_of

ADU_SCALE = 65535.0
SCALE_KEY = "ADUSCALE"  # ADU = stored value * ADUSCALE
FULL_KEY = "ADUFULL"  # full scale of the data range, in ADU
DEFECTS_SUFFIX = ".defects.fits"
LEGACY_DEFECTS_EXTNAME = "DEFECTS"  # masters written before the sidecar file
DEFECTS_IMAGETYP = "Master Defect Map"
_DROPPED = ("BZERO", "BSCALE", "DATAMAX", "DATAMIN")


def adu_scale(header: fits.Header) -> float:
    """The factor from stored values to ADU: ADUSCALE, 1 for files in ADU (the old form, raw frames)."""
    try:
        return float(header.get(SCALE_KEY, 1.0))
    except (TypeError, ValueError):
        return 1.0


def to_file_form(data: np.ndarray, header: fits.Header) -> tuple[np.ndarray, fits.Header]:
    """ADU data and header -> what is written: float32 in [0, 1] and the keywords to undo it."""
    hdr = header.copy()
    full = hdr.get("DATAMAX")
    for key in _DROPPED:
        hdr.remove(key, ignore_missing=True, remove_all=True)
    hdr[SCALE_KEY] = (ADU_SCALE, "ADU = pixel value x ADUSCALE (data in [0, 1])")
    if full is not None:
        hdr[FULL_KEY] = (int(full), "full scale of the data range (ADU)")
    stored = np.divide(np.asarray(data, np.float32), np.float32(ADU_SCALE), dtype=np.float32)
    return stored, hdr


def adu_header(header: fits.Header) -> fits.Header:
    """A product's header as its data read in ADU: no ADUSCALE, DATAMAX in ADU; others unchanged.
    For readers that apply `adu_scale` themselves (the stacker scales as it decodes bands)."""
    if SCALE_KEY not in header:
        return header
    hdr = header.copy()
    hdr.remove(SCALE_KEY, ignore_missing=True)
    if FULL_KEY in hdr:
        hdr["DATAMAX"] = (int(hdr[FULL_KEY]), "full scale of the data range (ADU)")
        hdr.remove(FULL_KEY)
    return hdr


def to_adu_form(data: np.ndarray, header: fits.Header) -> tuple[np.ndarray, fits.Header]:
    """Stored data and header -> ADU float32 and a header with DATAMAX in ADU; no-op on old files."""
    scale = adu_scale(header)
    if SCALE_KEY not in header:
        return data, header
    hdr = adu_header(header)
    out = np.asarray(data, np.float32).astype(np.float32, copy=True)  # native order, writable
    out *= np.float32(scale)  # exact product rounded once: the same as in float64
    return out, hdr


def write_product(path: str | os.PathLike[str], data: np.ndarray, header: fits.Header) -> Path:
    """Write ADU data (a master or a calibrated light) atomically in the file form."""
    stored, hdr = to_file_form(data, header)
    return write_fits_atomic(path, stored, hdr)


def read_product(path: str | os.PathLike[str]) -> tuple[np.ndarray, fits.Header]:
    """Read a product of either form back in ADU (float32) with DATAMAX in ADU."""
    data, header = read_fits(path)
    if data.dtype.kind != "f" and SCALE_KEY not in header:
        return data, header
    return to_adu_form(data, header)


def defects_path(master: str | os.PathLike[str]) -> Path:
    """Where a master's defect map lives: `<stem>.defects.fits` beside it."""
    p = Path(master)
    return p.with_name(f"{p.stem}{DEFECTS_SUFFIX}")


def write_defects(
    master: str | os.PathLike[str], defects: np.ndarray | None, header: fits.Header
) -> Path | None:
    """Write (or, for a master without one, remove any stale) defect map beside `master`.

    The map records the master's SRCHASH and DATE so a map left from another master of the same
    name is never taken for this one's."""
    target = defects_path(master)
    if defects is None:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        return None
    hdr = fits.Header()
    hdr["IMAGETYP"] = (DEFECTS_IMAGETYP, "cosmetic defects of a master")
    hdr["MASTER"] = (Path(master).name, "the master this map belongs to")
    for key in ("SRCHASH", "DATE"):
        if key in header:
            hdr[key] = header[key]
    hdr["COMMENT"] = "cosmetic defects: 0 good, 1 hot, 2 cold"
    return write_fits_atomic(target, np.asarray(defects, np.uint8), hdr)


def read_defects(
    master: str | os.PathLike[str], header: fits.Header, shape: tuple[int, ...]
) -> np.ndarray | None:
    """The master's defect map: the sidecar file when it belongs to this master, else the DEFECTS
    extension of an old master, else None (calibration then computes one from the data)."""
    side = defects_path(master)
    if side.is_file():
        data, hdr = read_fits(side)
        if _belongs(hdr, header) and data.shape == shape:
            return np.asarray(data, np.uint8)
    if SCALE_KEY in header:
        return None  # the new form never has the extension
    with fits.open(master, memmap=False, lazy_load_hdus=True) as hdul:
        if LEGACY_DEFECTS_EXTNAME in hdul:
            legacy = np.asarray(hdul[LEGACY_DEFECTS_EXTNAME].data, np.uint8)
            return legacy if legacy.shape == shape else None
    return None


def defects_file(master: str | os.PathLike[str]) -> Path | None:
    """The master's defect map file when one beside it belongs to it (headers only are read): what
    travels with the master when it is copied elsewhere (sync)."""
    side = defects_path(master)
    if not side.is_file():
        return None
    try:
        return side if _belongs(read_header(side), read_header(master)) else None
    except CorruptFile:
        return None


def _belongs(defects_header: fits.Header, master_header: fits.Header) -> bool:
    """A map records its master's SRCHASH and DATE: one left by another master of that name differs."""
    keys = ("SRCHASH", "DATE")
    return all(defects_header.get(k) == master_header.get(k) for k in keys if k in defects_header or k in master_header)


def master_keywords(header: fits.Header, sources: Iterable[fits.Header]) -> None:
    """What Siril and WBPP read from a stack: STACKCNT, LIVETIME (summed exposure), DATE-OBS and
    DATE-BEG (the first source's start), DATE-END (the last one's end), when the sources say."""
    srcs = list(sources)
    n = int(header.get("NCOMBINE", len(srcs)))
    header["STACKCNT"] = (n, "number of frames stacked")
    exposures = [exposure_of(h) for h in srcs]
    if srcs and all(e is not None for e in exposures):
        header["LIVETIME"] = (round(sum(e for e in exposures if e is not None), 6), "[s] summed exposure")
    elif exposure_of(header) is not None:
        header["LIVETIME"] = (round(n * (exposure_of(header) or 0.0), 6), "[s] summed exposure")
    spans = [s for s in (_span(h) for h in srcs) if s is not None]
    if spans:
        begin = min(s[0] for s in spans)
        end = max(s[1] for s in spans)
        header["DATE-OBS"] = (_iso(begin), "UTC start of the first source frame")
        header["DATE-BEG"] = (_iso(begin), "UTC start of the first source frame")
        header["DATE-END"] = (_iso(end), "UTC end of the last source frame")
    return None


def _span(header: fits.Header) -> tuple[_dt.datetime, _dt.datetime] | None:
    raw = header.get("DATE-BEG", header.get("DATE-OBS"))
    if not raw:
        return None
    try:
        start = _dt.datetime.fromisoformat(str(raw).strip().rstrip("Z"))
    except ValueError:
        return None
    if start.tzinfo is not None:
        start = start.astimezone(_dt.UTC).replace(tzinfo=None)
    return start, start + _dt.timedelta(seconds=exposure_of(header) or 0.0)


def _iso(t: _dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")


__all__ = [
    "ADU_SCALE",
    "DEFECTS_SUFFIX",
    "FULL_KEY",
    "SCALE_KEY",
    "adu_header",
    "adu_scale",
    "defects_file",
    "defects_path",
    "master_keywords",
    "read_defects",
    "read_product",
    "to_adu_form",
    "to_file_form",
    "write_defects",
    "write_product",
]
