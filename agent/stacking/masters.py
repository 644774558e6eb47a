"""Master frames as files: a recipe's master written as a product (`products.py`) with its defect
map beside it, and masters read back (or taken from memory) in the one shape light calibration uses."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from agent.errors import CorruptFile
from agent.stacking import products
from agent.stacking.combine import Master
from agent.stacking.quality import QualityIssue

DEFECTS_EXTNAME = products.LEGACY_DEFECTS_EXTNAME


@dataclass
class CalibrationMaster(Master):
    """A master built by a recipe: also its defect map (written beside it as
    `<master>.defects.fits`) and the quality findings made while building it (also in its HISTORY)."""

    defects: np.ndarray | None = None
    issues: list[QualityIssue] = field(default_factory=list)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the master in the products' form (float32 ADU / 65535), then its defect map beside
        it (a stale map of an earlier master of that name is removed) and any rejection maps."""
        return write_master(self, path, self.defects)


def write_master(master: Master, path: str | os.PathLike[str], defects: np.ndarray | None = None) -> Path:
    """Write any built master as a product with its rejection maps (`Master.write`), then its defect
    map beside it."""
    target = Master.write(master, path)
    products.write_defects(target, defects, master.header)
    return target


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
    """Read a master of either form back in ADU, with its defect map (sidecar or old extension).

    The image may be in the primary or an extension HDU, compressed or not (`agent.fitsfile`);
    a missing, broken, cube or all-masked file is one `UnreadableImage` line."""
    try:
        data, header = products.read_product(path)
        defects = products.read_defects(path, header, data.shape)
    except FileNotFoundError as exc:
        raise CorruptFile(f"{path}: no such master; check the path") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptFile(f"{path}: not a readable FITS master ({exc}); rebuild it") from exc
    if data.ndim != 2:
        raise CorruptFile(f"{path}: master is not a 2-D image; rebuild it")
    return MasterFrame(kind, np.asarray(data, np.float32), header, str(path), defects)


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


__all__ = ["DEFECTS_EXTNAME", "CalibrationMaster", "MasterFrame", "as_master", "load_master", "write_master"]
