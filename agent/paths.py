"""Where obsagent keeps its data: `--data`, then `OBSAGENT_DATA`, then `$XDG_DATA_HOME/obsagent`."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir(explicit: str | os.PathLike[str] | None = None, *, create: bool = True) -> Path:
    """The data folder; made when missing unless `create` is false (a command that only reads)."""
    if explicit:
        base = Path(explicit)
    elif os.environ.get("OBSAGENT_DATA"):
        base = Path(os.environ["OBSAGENT_DATA"])
    else:
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        base = Path(xdg) / "obsagent"
    if create:
        base.mkdir(parents=True, exist_ok=True)
    return base


def cache_dir() -> Path:
    """Writable cache for numba kernels (NUMBA_CACHE_DIR is honoured when set)."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(os.environ.get("NUMBA_CACHE_DIR") or Path(xdg) / "obsagent" / "numba")
    path.mkdir(parents=True, exist_ok=True)
    return path
