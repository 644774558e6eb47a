"""Master frames as files: a recipe's master written with its defect map, and masters read back
(or taken from memory) in the one shape light calibration uses."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from agent.errors import CorruptFile
from agent.fitsfile import write_fits_atomic, write_hdul_atomic
from agent.stacking.combine import Master
from agent.stacking.quality import QualityIssue

DEFECTS_EXTNAME = "DEFECTS"


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


__all__ = ["DEFECTS_EXTNAME", "CalibrationMaster", "MasterFrame", "as_master", "load_master"]
