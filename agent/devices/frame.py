"""A captured frame: pixels in the camera's native dtype plus a complete FITS header."""

from __future__ import annotations

import io
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from agent.errors import CorruptFile, FrameMismatch
from agent.fitsfile import write_fits_atomic

# IMAGETYP values as most capture programs write them, and as Siril/PixInsight recognise them.
IMAGETYP = {
    "light": "Light Frame",
    "dark": "Dark Frame",
    "bias": "Bias Frame",
    "flat": "Flat Field",
    "darkflat": "Dark Flat",
}
FRAME_TYPES = tuple(IMAGETYP)

# Keys every frame header carries when the value is known.
REQUIRED_KEYS = (
    "IMAGETYP", "EXPTIME", "DATE-OBS", "CCD-TEMP", "SET-TEMP", "GAIN", "OFFSET",
    "XBINNING", "YBINNING", "FILTER", "INSTRUME", "READOUTM", "BAYERPAT",
)


@dataclass
class Frame:
    data: np.ndarray
    header: fits.Header

    @property
    def frame_type(self) -> str:
        return str(self.header.get("FRAMETYP", "light"))

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp name, fsync, rename) in the native dtype."""
        return write_fits_atomic(path, self.data, self.header)


def decode_fits_blob(data: bytes, source: str, fmt: str = ".fits") -> tuple[np.ndarray, fits.Header]:
    """Decode a FITS BLOB; a truncated or corrupt one raises `CorruptFile`.

    `fmt` is the BLOB's format as indiccd.cpp names it: ".fits", ".fits.z" (zlib, compression on
    with an old driver) or ".fits.fz" (fpack, compression on). Anything else (".raw" native,
    ".xisf") is not a FITS image: capture hygiene should have switched the driver to FITS.
    """
    fmt = (fmt or ".fits").strip().lower()
    if fmt and not fmt.startswith(".fits"):
        raise CorruptFile(
            f"{source} sent a {fmt!r} image, not FITS; set CCD_TRANSFER_FORMAT to FITS (obsagent does this "
            "before every capture block)"
        )
    try:
        if fmt.endswith(".z"):
            data = zlib.decompress(data)
        with warnings.catch_warnings():
            # a truncated BLOB is reported below as CorruptFile; astropy's own warning adds nothing
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                hdu = next((h for h in hdul if h.data is not None), hdul[0])
                image = np.asarray(hdu.data)
                header = hdu.header.copy()
                if hdu is not hdul[0]:  # fpack: the image is a compressed extension
                    header = _primary_like(header)
    except Exception as exc:  # astropy raises several types for bad input
        raise CorruptFile(f"{source} sent an image that is not valid FITS ({exc}); retry the exposure") from exc
    if image is None or image.ndim != 2 or image.size == 0:
        raise CorruptFile(f"{source} sent a FITS image without 2-D pixel data; retry the exposure")
    expected = int(header.get("NAXIS1", image.shape[1])) * int(header.get("NAXIS2", image.shape[0]))
    if image.size != expected:
        raise CorruptFile(f"{source} sent a truncated image ({image.size} of {expected} pixels); retry the exposure")
    return image, header


def _primary_like(header: fits.Header) -> fits.Header:
    """A compressed extension's header as the primary header it was packed from."""
    out = fits.Header()
    for card in header.cards:
        if card.keyword in ("XTENSION", "PCOUNT", "GCOUNT", "EXTNAME"):
            continue
        out.append(card)
    out.insert(0, ("SIMPLE", True))
    return out


def check_frame(
    data: np.ndarray, header: fits.Header, source: str, width: int, height: int, binning: int, bit_depth: int = 16
) -> None:
    """Refuse a frame that is not what was asked for: a left-over ROI, 8-bit pixels, wrong binning."""
    got_h, got_w = data.shape
    if (got_w, got_h) != (width, height):
        raise FrameMismatch(
            f"{source} sent a {got_w}x{got_h} frame but {width}x{height} was asked for (a sub-frame left in "
            "CCD_FRAME?); reset the frame or fix roi in the sequence file"
        )
    bits = int(data.dtype.itemsize * 8)
    if bit_depth >= 16 and bits < 16:
        raise FrameMismatch(
            f"{source} sent {bits}-bit pixels; set CCD_CAPTURE_FORMAT to the 16-bit raw format"
        )
    for key in ("XBINNING", "YBINNING"):
        if key in header and int(header[key]) != binning:
            raise FrameMismatch(f"{source} sent a frame binned {header[key]} ({key}) but binning {binning} was asked for")
