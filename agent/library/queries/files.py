"""Downloads by id: a file is served only if the library records it, exactly as recorded."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.library.queries.lights import LightsIndex
from agent.library.store import Library


def known_file(lib: Library, kind: str, ident: int) -> Path | None:
    """The file the library records for (kind, id), only if it is still exactly that file: a
    regular file at its recorded real path (no symlink anywhere on the way). Nothing from a
    request ever becomes a path; only ids are looked up."""
    if kind == "raw":
        row = lib.conn.execute("SELECT path, size_bytes FROM frames WHERE id = ?", (ident,)).fetchone()
        recorded, size = (row[0], row[1]) if row else (None, None)
    elif kind == "calibrated":
        row = lib.conn.execute("SELECT output_path FROM lights WHERE frame_id = ?", (ident,)).fetchone()
        recorded, size = (row[0] if row else None), None
    elif kind == "master":
        row = lib.conn.execute("SELECT path FROM masters WHERE id = ?", (ident,)).fetchone()
        recorded, size = (row[0] if row else None), None
    else:
        return None
    if not recorded:
        return None
    return checked_file(lib.on_disk(str(recorded)), size)


def checked_file(path: Path, size: int | None = None) -> Path | None:
    """`path` if it is a regular file reached without symlinks (and of `size` when given)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or os.path.realpath(path) != os.path.normpath(path):
        return None
    if size is not None and st.st_size != size:
        return None
    return path


def light_files(
    lib: Library, index: LightsIndex, night: str | None = None, target: str | None = None
) -> list[tuple[str, Path]]:
    """(name in the zip, file) for every raw and calibrated light of a night or a target."""
    out = []
    for i in index.select(night=night, target=target):
        w = index.words
        folder = f"{w[index.night[i]]}/{w[index.target[i]]}/{w[index.filter[i]]}"
        raw = known_file(lib, "raw", index.ids[i])
        if raw is not None:
            out.append((f"{folder}/raw/{raw.name}", raw))
        cal = known_file(lib, "calibrated", index.ids[i])
        if cal is not None:
            out.append((f"{folder}/calibrated/{cal.name}", cal))
    return out
