"""Recording FITS files: key each one from its header, or quarantine it with the reason.

A file is always on disk before its row is committed; ingesting is idempotent (same path, same
bytes: unchanged), so a re-run after a crash, or a sweep over `frames/`, simply finishes the job.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from agent.library import frame_checks
from agent.library.camera_names import aliases_for, known_spelling
from agent.library.database import Database, LibraryError
from agent.library.headers import FrameInfo, ProcessedFile, UnreadableFrame, read_frame_info
from agent.library.keys import FrameType
from agent.library.locations import disk_path, stored_path
from agent.library.sensor_kinds import ensure_camera

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fits.gz", ".fit.gz")  # as `agent.fitsfile` reads


@dataclass(frozen=True)
class IngestResult:
    path: str
    status: str  # added | unchanged | updated | duplicate | quarantined | skipped | missing
    frame_id: int | None = None
    reason: str | None = None


def file_checksum(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def ingest_file(
    db: Database, path: str | os.PathLike[str], *, frame_type: FrameType | None = None
) -> IngestResult:
    """Record one file. Idempotent: the same path with the same bytes is left alone; a
    file the library cannot key is quarantined with the reason, never raised."""
    p = Path(path).resolve()
    shown = str(p)
    key = stored_path(db.folder, p)  # relative inside the data folder, absolute outside
    if not p.is_file():
        return IngestResult(shown, "missing", reason="no such file")
    checksum = file_checksum(p)
    size = p.stat().st_size
    conn = db.conn
    existing = conn.execute("SELECT id, checksum, state FROM frames WHERE path = ?", (key,)).fetchone()
    if existing is not None and existing["checksum"] == checksum and existing["state"] != "quarantined":
        return IngestResult(shown, "unchanged", int(existing["id"]))
    if existing is not None and existing["state"] in ("in_master",):
        return IngestResult(shown, "unchanged", int(existing["id"]), reason="file changed after it went into a master")
    duplicate = conn.execute(
        "SELECT id, path FROM frames WHERE checksum = ? AND path != ? AND state != 'quarantined'",
        (checksum, key),
    ).fetchone()
    if duplicate is not None:
        other = disk_path(db.folder, str(duplicate["path"]))
        return IngestResult(shown, "duplicate", int(duplicate["id"]), reason=f"same bytes as {other}")
    try:
        info: FrameInfo | None = read_frame_info(p, frame_type=frame_type, aliases=aliases_for(conn))
        reason = None
    except ProcessedFile as exc:  # a master, calibrated light or stack: no row, never a raw frame
        return IngestResult(shown, "skipped", None, without_path(exc, p))
    except UnreadableFrame as exc:
        info, reason = None, without_path(exc, p)
    if info is not None:
        info = replace(info, camera=known_spelling(conn, info.camera))
    gated = frame_checks.gate(p, info) if info is not None else None
    with db.transaction() as c:
        if existing is not None:
            c.execute("DELETE FROM lights WHERE frame_id = ?", (existing["id"],))
            c.execute("DELETE FROM frames WHERE id = ?", (existing["id"],))
        frame_id = insert_frame(c, key, checksum, size, info, reason or gated)
    if info is None or gated is not None:
        return IngestResult(shown, "quarantined", frame_id, reason or gated)
    return IngestResult(shown, "updated" if existing is not None else "added", frame_id)


def without_path(exc: Exception, path: Path) -> str:
    """The reason alone: the reader's errors start with the file's name, which the result (and the
    library's listing) already shows beside it."""
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def insert_frame(
    c: sqlite3.Connection,
    path: str,
    checksum: str,
    size: int,
    info: FrameInfo | None,
    reason: str | None,
) -> int:
    """Inside an open transaction: the frame's row (and a pending light row for a light).

    A frame with `info` and a `reason` keeps its key but is quarantined: it failed its gate."""
    now = time.time()
    if info is None:
        cur = c.execute(
            "INSERT INTO frames (path, checksum, size_bytes, ingested_at, state, reason) "
            "VALUES (?, ?, ?, ?, 'quarantined', ?)",
            (path, checksum, size, now, reason),
        )
        return int(cur.lastrowid or 0)
    kind = ensure_camera(c, info.camera)
    state = "light" if info.frame_type is FrameType.LIGHT else "accumulating"
    if reason is not None:
        state = "quarantined"
    flags = list(info.notes)
    off = frame_checks.off_set_point(info)
    if off is not None:
        flags.append(off)
    cur = c.execute(
        "INSERT INTO frames (path, checksum, size_bytes, frame_type, camera, sensor_kind, width, height, "
        "binning, gain, offset, readout_mode, bit_depth, filter, exposure_key, exposure, set_temp, "
        "ccd_temp, temperature, captured_at, ingested_at, dialect, quality_flags, state, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            path,
            checksum,
            size,
            info.frame_type.value,
            info.camera,
            kind.value,
            info.width,
            info.height,
            info.binning,
            info.gain,
            info.offset,
            info.readout_mode,
            info.bit_depth,
            info.filter,
            info.exposure_key,
            info.exposure,
            info.set_temp,
            info.ccd_temp,
            info.temperature,
            info.captured_at,
            now,
            info.dialect,
            json.dumps(flags),
            state,
            reason,
        ),
    )
    frame_id = int(cur.lastrowid or 0)
    if state == "light":
        c.execute("INSERT INTO lights (frame_id, status, updated_at) VALUES (?, 'pending', ?)", (frame_id, now))
    return frame_id


def find_orphans(conn: sqlite3.Connection, root: Path, frames_dir: Path) -> list[Path]:
    """Frames our capture wrote whose row was never committed (crash between the two);
    `root` is the data folder (resolved), which recorded paths are relative to."""
    if not frames_dir.exists():
        return []
    pattern = stored_path(root, frames_dir) + "%"
    known = {r[0] for r in conn.execute("SELECT path FROM frames WHERE path LIKE ?", (pattern,))}
    return [p for p in iter_fits([frames_dir]) if stored_path(root, p) not in known]


def iter_fits(paths: Sequence[str | os.PathLike[str]]) -> Iterator[Path]:
    """FITS files named or found under the given folders, in a stable order; hidden and
    partial (`.part`) files are skipped."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for sub in sorted(p.rglob("*")):
                if sub.is_file() and _is_fits_name(sub.name):
                    yield sub
        elif p.exists():
            yield p
        else:
            raise LibraryError(f"{p}: no such file or folder; check the path")


def _is_fits_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(FITS_SUFFIXES)
