"""Where a recorded file is: paths in the database are relative to the data folder.

The data folder can be copied to a NAS or a new disk and opened there: a file inside it is
recorded as `frames/2026-03-14/M31/light_M31_L_60s_0001.fits`, and found by joining that with
wherever the folder is now. A file ingested from elsewhere stays absolute ("outside the data
folder"): moving the folder does not move it. Rows written before this rule (schema 1) are
converted by migration 2 (`relative_paths`).
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# The tables and columns that name files, and how to pick the rows to convert.
PATH_COLUMNS = (("frames", "path"), ("masters", "path"), ("lights", "output_path"))
# Folders obsagent writes into: the part of a recorded path before them is the folder the
# database lived in when it was written.
OWN_FOLDERS = ("masters", "frames")


def database_folder(conn: sqlite3.Connection) -> Path:
    """The folder holding the connection's database file: the data folder, resolved."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return Path(str(row[2])).resolve().parent


def stored_path(root: Path, path: str | os.PathLike[str]) -> str:
    """How the library records `path` (absolute, or relative to the working directory): relative
    (POSIX) inside the data folder `root` (resolved), absolute outside it."""
    p = Path(path).resolve()
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


def disk_path(root: Path, stored: str | os.PathLike[str]) -> Path:
    """Where a recorded file is now: relative records are inside the data folder `root`."""
    p = Path(stored)
    return p if p.is_absolute() else root / p


def is_outside(stored: str) -> bool:
    """True for a file recorded outside the data folder (it does not move with the folder)."""
    return Path(stored).is_absolute()


def like_under(root: Path, folder: Path) -> str:
    """A LIKE pattern for the recorded paths of the files under `folder`."""
    return stored_path(root, folder).rstrip("/") + "/%"


@dataclass
class MissingFiles:
    """Recorded files not found on disk: `checked` of them looked at, `missing` not there."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    outside: int = 0  # of the missing, how many were recorded outside the data folder

    def warning(self, root: Path) -> str | None:
        """One line saying what is missing and what to do, or None when nothing is."""
        if not self.missing:
            return None
        n = len(self.missing)
        where = (
            f"; {self.outside} of them outside the data folder (ingested from elsewhere, they do not move "
            "with it)"
            if self.outside
            else ""
        )
        return (
            f"{n} of {self.checked} files the library records are missing on disk under {root} "
            f"(e.g. {self.missing[0]}){where}: copy the whole data folder (masters/ and frames/ with "
            "library.sqlite), or point --data at the folder that has them"
        )


def check_files(conn: sqlite3.Connection, root: Path, sample: int = 64) -> MissingFiles:
    """Look for every current master and a spread `sample` of frames on disk. Frames the sync
    retention pruned on purpose are not counted."""
    result = MissingFiles()
    stored = [str(r[0]) for r in conn.execute("SELECT path FROM masters WHERE superseded_by IS NULL")]
    pruned = ""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_pruned'").fetchone():
        pruned = " AND id NOT IN (SELECT frame_id FROM sync_pruned)"
    total = int(conn.execute(f"SELECT COUNT(*) FROM frames WHERE 1=1{pruned}").fetchone()[0])
    if total:
        step = max(1, total // sample)
        stored += [
            str(r[0])
            for r in conn.execute(
                f"SELECT path FROM (SELECT path, ROW_NUMBER() OVER (ORDER BY id) AS n FROM frames WHERE 1=1{pruned}) "
                "WHERE (n - 1) % ? = 0 LIMIT ?",
                (step, sample),
            )
        ]
    for s in stored:
        result.checked += 1
        if not disk_path(root, s).exists():
            result.missing.append(s)
            result.outside += is_outside(s)
    return result


def former_root(conn: sqlite3.Connection, root: Path) -> str | None:
    """The folder the database was in when its absolute paths were written, if it was
    elsewhere: the most common prefix before `/masters/` (else `/frames/`) of its paths, taken
    only if the files recorded there are found under `root` now (the folder was copied or moved;
    a foreign folder that happens to have a `frames/` is left alone)."""
    for folder in OWN_FOLDERS:
        prefixes: Counter[str] = Counter()
        for (path,) in conn.execute(f"SELECT path FROM {folder} WHERE path LIKE '/%/{folder}/%'"):
            parts = PurePosixPath(str(path)).parts
            cut = len(parts) - 1 - parts[::-1].index(folder)
            prefixes[str(PurePosixPath(*parts[:cut]))] += 1
        if not prefixes:
            continue
        best = prefixes.most_common(1)[0][0]
        if best == str(root):
            return None
        rows = conn.execute(f"SELECT path FROM {folder} WHERE path LIKE ? LIMIT 8", (best + "/%",)).fetchall()
        found = sum((root / str(r[0])[len(best) + 1 :]).exists() for r in rows)
        return best if rows and found * 2 > len(rows) else None
    return None


def relative_paths(conn: sqlite3.Connection, root: Path) -> None:
    """Migration 2: record paths inside the data folder relative to it. Paths under the folder
    the database was in before a move (found by `former_root`) count as inside too, so a library
    copied by an older obsagent works at once; every other path stays absolute."""
    root = root.resolve()
    before = former_root(conn, root)
    bases = [str(root)] + ([before] if before else [])
    for table, column in PATH_COLUMNS:
        rows = conn.execute(f"SELECT rowid, {column} FROM {table} WHERE {column} LIKE '/%'").fetchall()
        for rowid, value in rows:
            rel = _relative(str(value), bases)
            if rel is not None:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (rel, rowid))
    for rowid, inputs in conn.execute("SELECT rowid, inputs FROM jobs").fetchall():
        _relative_inputs(conn, int(rowid), str(inputs), bases)


def _relative(value: str, bases: list[str]) -> str | None:
    for base in bases:
        if value.startswith(base + "/"):
            return value[len(base) + 1 :]
    return None


def _relative_inputs(conn: sqlite3.Connection, rowid: int, inputs: str, bases: list[str]) -> None:
    import json

    try:
        data = json.loads(inputs)
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    changed = False
    for name in ("darkflat", "bias"):
        value = data.get(name)
        rel = _relative(value, bases) if isinstance(value, str) else None
        if rel is not None:
            data[name] = rel
            changed = True
    if changed:
        conn.execute("UPDATE jobs SET inputs = ? WHERE rowid = ?", (json.dumps(data), rowid))
