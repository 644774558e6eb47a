"""A fast-loading copy of astropy's Earth orientation table for the planner.

astropy parses its bundled IERS text tables on first use in every process, which costs more than a
second on a Raspberry Pi-class machine -- longer than planning the night itself. The parsed columns
are kept as a NumPy archive in the cache directory, keyed by the astropy and astropy-iers-data
versions, so a new process loads the identical table in milliseconds. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from agent import offline
from agent.umask import new_file_mode

_loaded: Any = None
_loading = threading.Lock()


def _cache_file() -> Path:
    import astropy
    import astropy_iers_data

    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(xdg) / "obsagent" / "iers"
    return folder / f"iers-auto-astropy{astropy.__version__}-data{astropy_iers_data.__version__}.npz"


def _save(table: Any, path: Path) -> None:
    columns: dict[str, Any] = {
        name: np.asarray(getattr(table[name], "value", table[name])) for name in table.colnames
    }
    units = {
        name: str(table[name].unit) if getattr(table[name], "unit", None) is not None else ""
        for name in table.colnames
    }
    meta = {key: (value.item() if hasattr(value, "item") else value) for key, value in table.meta.items()}
    columns["__info__"] = np.array(json.dumps({"units": units, "meta": meta}))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        os.fchmod(fd, new_file_mode())  # mkstemp makes 0600; the user's umask decides
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **columns)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path) -> Any:
    import astropy.units as u
    from astropy.table import QTable
    from astropy.utils import iers

    with np.load(path, allow_pickle=False) as archive:
        info = json.loads(str(archive["__info__"]))
        table = QTable()
        for name, unit in info["units"].items():
            table[name] = archive[name] * u.Unit(unit) if unit else archive[name]
    return iers.IERS_Auto(table, meta=info["meta"])


def earth_orientation_table() -> Any:
    """astropy's IERS_Auto table (bundled data, no download), from the cache when possible.

    Loaded once under a lock: nights planned on several threads at once would otherwise read the
    cache together, and numpy's header parsing (ast) is not thread-safe on CPython 3.11.7 and
    earlier (gh-106905: "AST constructor recursion depth mismatch").
    """
    global _loaded
    if _loaded is not None:
        return _loaded
    with _loading:
        if _loaded is None:
            from astropy.utils import iers

            table = _load_once()
            # Also astropy's own default from now on: `with earth_orientation_table.set(...)` blocks
            # that end on one thread then restore this table, never a default that would be parsed again.
            iers.earth_orientation_table.set(table)
            _loaded = table
        return _loaded


def _load_once() -> Any:
    offline.configure()
    from astropy.utils import iers

    path = _cache_file()
    if path.exists():
        try:
            return _load(path)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt from astropy's own table below
    table = iers.IERS_Auto.open()
    with contextlib.suppress(OSError):  # a read-only cache only costs speed
        _save(table, path)
    return table
