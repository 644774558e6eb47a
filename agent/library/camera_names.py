"""One name per camera, whichever program wrote the header.

The same camera reaches the library under several names: NINA, SGP, APT and SharpCap write the
ASCOM/SDK model ('ZWO ASI294MC Pro'), INDI drivers put the driver family in the device name
('ZWO CCD ASI294MC Pro', 'QHY CCD QHY268M-...'), others change spacing or case. Frames and
masters are keyed by the canonical name, so they meet.

The built-in rules drop INDI's ' CCD ' after a vendor and collapse spaces; the built-in table
names the few other spellings known. A user's own table, `camera_aliases.yaml` in the data
folder, maps a canonical name to the names that mean it:

    ZWO ASI2600MM Pro:
      - ASI2600MM
      - My main camera
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from agent.errors import ConfigError

ALIASES_FILE = "camera_aliases.yaml"

# INDI device names: '<vendor> CCD <model>' (indi-asi, indi-qhy, indi-playerone, indi-toupbase...).
_INDI_VENDOR_CCD = re.compile(
    r"^(ZWO|QHY|Player One|PlayerOne|ToupTek|Touptek|Altair|Omegon|Ogma|SVBONY|Risingcam|Starshoot)\s+CCD\s+",
    re.IGNORECASE,
)

# Known spellings of one camera by different programs: lower-cased, spaces collapsed -> canonical.
BUILT_IN: dict[str, str] = {
    "dwarfii": "DWARF II",
    "dwarf ii": "DWARF II",
    "dwarf 2": "DWARF II",
    "seestar s50": "Seestar S50",
    "zwo seestar s50": "Seestar S50",
}


def _fold(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip().lower()


def canonical_camera(name: str, aliases: dict[str, str] | None = None) -> str:
    """The name a camera is keyed by: the user's table first, then the built-in rules."""
    spaced = re.sub(r"\s+", " ", name).strip()
    folded = spaced.lower()
    if aliases and folded in aliases:
        return aliases[folded]
    if folded in BUILT_IN:
        return BUILT_IN[folded]
    stripped = _INDI_VENDOR_CCD.sub(lambda m: f"{m.group(1)} ", spaced)
    if aliases and stripped.lower() in aliases:
        return aliases[stripped.lower()]
    return BUILT_IN.get(stripped.lower(), stripped)


def known_spelling(conn: sqlite3.Connection, name: str) -> str:
    """A camera the library already knows under a name that differs only in case keeps that
    name, so 'ZWO ASI294MC PRO' joins 'ZWO ASI294MC Pro'."""
    row = conn.execute("SELECT name FROM cameras WHERE lower(name) = lower(?) LIMIT 1", (name,)).fetchone()
    return str(row[0]) if row is not None else name


_cache: dict[Path, tuple[tuple[int, int], dict[str, str]]] = {}


def load_aliases(folder: Path) -> dict[str, str]:
    """The user's table in `folder` (the data folder), folded for lookup; empty if there is none.
    Re-read when the file changes."""
    path = folder / ALIASES_FILE
    try:
        st = path.stat()
        mtime = (st.st_mtime_ns, st.st_size)
    except OSError:
        return {}
    cached = _cache.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    table = parse_aliases(path.read_text(encoding="utf-8"), str(path))
    _cache[path] = (mtime, table)
    return table


def parse_aliases(source: str, where: str = ALIASES_FILE) -> dict[str, str]:
    """`canonical: [other names]` as a lookup from each folded name to its canonical one."""
    import yaml

    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc}); write `Canonical name: [other name, ...]`") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: write a mapping `Canonical name: [other name, ...]`")
    table: dict[str, str] = {}
    for canonical, others in data.items():
        names = [others] if isinstance(others, str) else others
        if not isinstance(canonical, str) or not isinstance(names, list) or not all(
            isinstance(n, str) for n in names
        ):
            raise ConfigError(f"{where}: {canonical!r}: give a list of names, e.g. `{canonical}: [ASI294MC]`")
        canon = re.sub(r"\s+", " ", canonical).strip()
        table[_fold(canon)] = canon
        for other in names:
            folded = _fold(other)
            if table.get(folded, canon) != canon:
                raise ConfigError(f"{where}: {other!r} is listed under two cameras; keep it under one")
            table[folded] = canon
    return table


def aliases_for(conn: sqlite3.Connection) -> dict[str, str]:
    """The user's table of the library this connection opens (in the database's folder)."""
    row = conn.execute("PRAGMA database_list").fetchone()
    if row is None or not row[2]:
        return {}
    return load_aliases(Path(str(row[2])).resolve().parent)
