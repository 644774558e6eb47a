"""A captured frame: pixels in the camera's native dtype plus a complete FITS header."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from agent.errors import CorruptFile
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


def decode_fits_blob(data: bytes, source: str) -> tuple[np.ndarray, fits.Header]:
    """Decode a FITS BLOB; a truncated or corrupt one raises `CorruptFile`."""
    try:
        with warnings.catch_warnings():
            # a truncated BLOB is reported below as CorruptFile; astropy's own warning adds nothing
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                hdu = hdul[0]
                image = np.asarray(hdu.data)
                header = hdu.header.copy()
    except Exception as exc:  # astropy raises several types for bad input
        raise CorruptFile(f"{source} sent an image that is not valid FITS ({exc}); retry the exposure") from exc
    if image is None or image.ndim != 2 or image.size == 0:
        raise CorruptFile(f"{source} sent a FITS image without 2-D pixel data; retry the exposure")
    expected = int(header.get("NAXIS1", image.shape[1])) * int(header.get("NAXIS2", image.shape[0]))
    if image.size != expected:
        raise CorruptFile(f"{source} sent a truncated image ({image.size} of {expected} pixels); retry the exposure")
    return image, header
