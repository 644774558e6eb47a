"""Atomic FITS writing and checked FITS reading shared by capture, stacking and the library.

A file is written under a temporary name in the same directory, fsynced, renamed, and the
directory fsynced, so a crash leaves either the old state or the complete file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from agent.errors import CorruptFile


def write_fits_atomic(path: str | os.PathLike[str], data: np.ndarray, header: fits.Header | None = None) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU(data=data, header=header)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            hdu.writeto(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def read_fits(path: str | os.PathLike[str]) -> tuple[np.ndarray, fits.Header]:
    """Read the first image HDU; a file that is not valid FITS raises `CorruptFile`."""
    try:
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                if hdu.data is not None and hdu.is_image:
                    return np.asarray(hdu.data), hdu.header.copy()
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptFile(f"{path}: not a readable FITS file ({exc}); re-capture or remove it") from exc
    raise CorruptFile(f"{path}: FITS file holds no image; re-capture or remove it")
