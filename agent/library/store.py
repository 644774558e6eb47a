"""The calibration library: one SQLite database (WAL) beside the frames and masters it describes.

Files are always written before the row that names them is committed, so after a crash the
database never points at a missing or half-written file; files without rows are found by
the sweep (`orphans`) and ingested.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from agent.errors import ObsAgentError
from agent.library.headers import FrameInfo, UnreadableFrame, read_frame_info
from agent.library.keys import KEY_COLUMNS, ConfigKey, FrameType, LibraryPolicy, SensorKind
from agent.library.migrations import migrate

DB_NAME = "library.sqlite"
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")


class LibraryError(ObsAgentError):
    """The library cannot do what was asked."""


@dataclass(frozen=True)
class IngestResult:
    path: str
    status: str  # added | unchanged | updated | duplicate | quarantined | missing
    frame_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Group:
    """Accumulating frames of one configuration; `key.temperature` is the group's set-point."""

    key: ConfigKey
    count: int
    temperatures: tuple[float | None, ...]
    first_captured: float
    last_captured: float


@dataclass(frozen=True)
class MasterRecord:
    id: int
    key: ConfigKey
    exposure: float | None
    path: str
    n_sources: int
    method: str
    stats: dict[str, object]
    created_at: float
    newest_source: float | None
    expires_at: float
    superseded_by: int | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            **self.key.as_dict(),
            "exposure": self.exposure,
            "path": self.path,
            "n_sources": self.n_sources,
            "method": self.method,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "superseded_by": self.superseded_by,
        }


def file_checksum(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def key_clause(values: Sequence[object], skip: frozenset[str] = frozenset()) -> tuple[str, list[object]]:
    """SQL condition that key columns equal `values` (in KEY_COLUMNS order). `IS NULL` for
    missing values and `=` otherwise: SQLite walks the index for `=` but not for `IS ?`."""
    clauses, args = [], []
    for col, value in zip(KEY_COLUMNS, values, strict=True):
        if col in skip:
            continue
        if value is None:
            clauses.append(f"{col} IS NULL")
        else:
            clauses.append(f"{col} = ?")
            args.append(value)
    return " AND ".join(clauses), args


class Library:
    """Frames, masters, lights and build jobs of one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = root / DB_NAME
        self.conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.schema_version = migrate(self.conn)

    @classmethod
    def open(cls, data: str | os.PathLike[str] | None = None) -> Library:
        from agent.paths import data_dir

        return cls(data_dir(data))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def masters_dir(self) -> Path:
        return self.root / "masters"

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # cameras -------------------------------------------------------------------------------

    def camera_kind(self, name: str) -> SensorKind:
        row = self.conn.execute("SELECT sensor_kind FROM cameras WHERE name = ?", (name,)).fetchone()
        return SensorKind(row[0]) if row else SensorKind.CMOS

    def set_camera_kind(self, name: str, kind: SensorKind) -> int:
        """Record a camera's sensor kind; frames and masters already recorded follow it."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO cameras (name, sensor_kind, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET sensor_kind = excluded.sensor_kind, "
                "updated_at = excluded.updated_at",
                (name, kind.value, time.time()),
            )
            n = c.execute("UPDATE frames SET sensor_kind = ? WHERE camera = ?", (kind.value, name)).rowcount
            c.execute("UPDATE masters SET sensor_kind = ? WHERE camera = ?", (kind.value, name))
        return int(n)

    def cameras(self) -> list[dict[str, object]]:
        rows = self.conn.execute(
            "SELECT c.name, c.sensor_kind, COUNT(f.id) AS frames FROM cameras c "
            "LEFT JOIN frames f ON f.camera = c.name GROUP BY c.name ORDER BY c.name"
        ).fetchall()
        return [dict(r) for r in rows]

    def _ensure_camera(self, c: sqlite3.Connection, name: str) -> SensorKind:
        c.execute(
            "INSERT OR IGNORE INTO cameras (name, sensor_kind, updated_at) VALUES (?, 'cmos', ?)",
            (name, time.time()),
        )
        row = c.execute("SELECT sensor_kind FROM cameras WHERE name = ?", (name,)).fetchone()
        return SensorKind(row[0])

    # ingest --------------------------------------------------------------------------------

    def ingest_file(
        self, path: str | os.PathLike[str], *, frame_type: FrameType | None = None
    ) -> IngestResult:
        """Record one file. Idempotent: the same path with the same bytes is left alone; a
        file the library cannot key is quarantined with the reason, never raised."""
        p = Path(path).resolve()
        key = str(p)
        if not p.is_file():
            return IngestResult(key, "missing", reason="no such file")
        checksum = file_checksum(p)
        size = p.stat().st_size
        existing = self.conn.execute(
            "SELECT id, checksum, state FROM frames WHERE path = ?", (key,)
        ).fetchone()
        if existing is not None and existing["checksum"] == checksum and existing["state"] != "quarantined":
            return IngestResult(key, "unchanged", int(existing["id"]))
        if existing is not None and existing["state"] in ("in_master",):
            return IngestResult(
                key, "unchanged", int(existing["id"]), reason="file changed after it went into a master"
            )
        duplicate = self.conn.execute(
            "SELECT id, path FROM frames WHERE checksum = ? AND path != ? AND state != 'quarantined'",
            (checksum, key),
        ).fetchone()
        if duplicate is not None:
            return IngestResult(
                key, "duplicate", int(duplicate["id"]), reason=f"same bytes as {duplicate['path']}"
            )
        try:
            info: FrameInfo | None = read_frame_info(p, frame_type=frame_type)
            reason = None
        except UnreadableFrame as exc:
            info, reason = None, str(exc)
        with self.transaction() as c:
            if existing is not None:
                c.execute("DELETE FROM lights WHERE frame_id = ?", (existing["id"],))
                c.execute("DELETE FROM frames WHERE id = ?", (existing["id"],))
            frame_id = self._insert_frame(c, key, checksum, size, info, reason)
        if info is None:
            return IngestResult(key, "quarantined", frame_id, reason)
        return IngestResult(key, "updated" if existing is not None else "added", frame_id)

    def _insert_frame(
        self,
        c: sqlite3.Connection,
        path: str,
        checksum: str,
        size: int,
        info: FrameInfo | None,
        reason: str | None,
    ) -> int:
        now = time.time()
        if info is None:
            cur = c.execute(
                "INSERT INTO frames (path, checksum, size_bytes, ingested_at, state, reason) "
                "VALUES (?, ?, ?, ?, 'quarantined', ?)",
                (path, checksum, size, now, reason),
            )
            return int(cur.lastrowid or 0)
        kind = self._ensure_camera(c, info.camera)
        state = "light" if info.frame_type is FrameType.LIGHT else "accumulating"
        cur = c.execute(
            "INSERT INTO frames (path, checksum, size_bytes, frame_type, camera, sensor_kind, width, height, "
            "binning, gain, offset, readout_mode, bit_depth, filter, exposure_key, exposure, set_temp, "
            "ccd_temp, temperature, captured_at, ingested_at, dialect, quality_flags, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                json.dumps(list(info.notes)),
                state,
            ),
        )
        frame_id = int(cur.lastrowid or 0)
        if state == "light":
            c.execute(
                "INSERT INTO lights (frame_id, status, updated_at) VALUES (?, 'pending', ?)", (frame_id, now)
            )
        return frame_id

    def add_frame(
        self, data: np.ndarray, header: fits.Header, name: str, *, frame_type: FrameType | None = None
    ) -> IngestResult:
        """Store a frame arriving from capture: file first (atomic), then its row."""
        from agent.fitsfile import write_fits_atomic

        day = time.strftime("%Y-%m-%d", time.gmtime())
        target = self.frames_dir / day / name
        write_fits_atomic(target, data, header)
        return self.ingest_file(target, frame_type=frame_type)

    def ingest_paths(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        frame_type: FrameType | None = None,
        progress: object | None = None,
    ) -> list[IngestResult]:
        files = list(iter_fits(paths))
        results = []
        for f in files:
            results.append(self.ingest_file(f, frame_type=frame_type))
            if callable(progress):
                progress(len(results), len(files))
        return results

    def orphans(self) -> list[Path]:
        """Frames our capture wrote whose row was never committed (crash between the two)."""
        if not self.frames_dir.exists():
            return []
        known = {
            r[0]
            for r in self.conn.execute("SELECT path FROM frames WHERE path LIKE ?", (f"{self.frames_dir}%",))
        }
        return [p for p in iter_fits([self.frames_dir]) if str(p.resolve()) not in known]

    # groups --------------------------------------------------------------------------------

    def groups(self, policy: LibraryPolicy, frame_type: FrameType | None = None) -> list[Group]:
        """Accumulating calibration frames grouped by exact key, temperatures clustered within
        the policy's tolerance around the most used set-point."""
        cols = ", ".join(KEY_COLUMNS)
        sql = (
            f"SELECT {cols}, ROUND(temperature, 1) AS t, COUNT(*) AS n, MIN(captured_at) AS first, "
            f"MAX(captured_at) AS last FROM frames WHERE state = 'accumulating'"
        )
        args: list[object] = []
        if frame_type is not None:
            sql += " AND frame_type = ?"
            args.append(frame_type.value)
        sql += f" GROUP BY {cols}, t"
        by_key: dict[tuple[object, ...], list[sqlite3.Row]] = {}
        for row in self.conn.execute(sql, args):
            by_key.setdefault(tuple(row[c] for c in KEY_COLUMNS), []).append(row)
        out: list[Group] = []
        for rows in by_key.values():
            for cluster in cluster_temperatures(rows, policy.temperature_tolerance):
                anchor = cluster[0]["t"]
                out.append(
                    Group(
                        key=ConfigKey.from_row(cluster[0], temperature=anchor),
                        count=sum(int(r["n"]) for r in cluster),
                        temperatures=tuple(r["t"] for r in cluster),
                        first_captured=min(float(r["first"] or 0) for r in cluster),
                        last_captured=max(float(r["last"] or 0) for r in cluster),
                    )
                )
        return out

    def group_frame_ids(self, group: Group) -> list[int]:
        temps = [t for t in group.temperatures if t is not None]
        where, args = key_clause(group.key.exact())
        sql = f"SELECT id FROM frames WHERE state = 'accumulating' AND {where}"
        if temps:
            sql += f" AND ROUND(temperature, 1) IN ({', '.join('?' * len(temps))})"
            args += temps
        else:
            sql += " AND temperature IS NULL"
        # Sorted here: an ORDER BY makes SQLite prefer the capture-time index over the key index.
        rows = self.conn.execute(sql.replace("SELECT id", "SELECT id, captured_at", 1), args).fetchall()
        return [int(r[0]) for r in sorted(rows, key=lambda r: (r[1] or 0.0, r[0]))]

    # masters -------------------------------------------------------------------------------

    def masters(
        self, *, current_only: bool = False, frame_type: FrameType | None = None
    ) -> list[MasterRecord]:
        sql = "SELECT * FROM masters WHERE 1=1"
        args: list[object] = []
        if current_only:
            sql += " AND superseded_by IS NULL"
        if frame_type is not None:
            sql += " AND frame_type = ?"
            args.append(frame_type.value)
        return [master_from_row(r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def master(self, master_id: int) -> MasterRecord:
        row = self.conn.execute("SELECT * FROM masters WHERE id = ?", (master_id,)).fetchone()
        if row is None:
            raise LibraryError(f"no master #{master_id}; list them with `obsagent library masters`")
        return master_from_row(row)

    def candidate_masters(self, key: ConfigKey, relax: frozenset[str] = frozenset()) -> list[MasterRecord]:
        """Masters whose exact key agrees with `key` except in the relaxed fields."""
        skip = set(relax) | ({"exposure_key"} if "exposure" in relax else set())
        where, args = key_clause(key.exact(), frozenset(skip))
        rows = self.conn.execute(f"SELECT * FROM masters WHERE {where} ORDER BY id", args)
        return [master_from_row(r) for r in rows]

    # lights --------------------------------------------------------------------------------

    def record_light_calibration(
        self,
        frame_id: int,
        *,
        status: str,
        masters_used: dict[str, int],
        warnings: Sequence[str] = (),
        output_path: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Remember how a light was calibrated so a newer master can invalidate the output."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO lights (frame_id, status, masters_used, warnings, output_path, reason, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(frame_id) DO UPDATE SET status = excluded.status, "
                "masters_used = excluded.masters_used, warnings = excluded.warnings, "
                "output_path = excluded.output_path, reason = excluded.reason, updated_at = excluded.updated_at",
                (
                    frame_id,
                    status,
                    json.dumps(masters_used),
                    json.dumps(list(warnings)),
                    output_path,
                    reason,
                    time.time(),
                ),
            )

    def lights(self, status: str | None = None, limit: int | None = None) -> list[dict[str, object]]:
        sql = (
            "SELECT f.id, f.path, f.camera, f.filter, f.exposure, f.temperature, f.captured_at, "
            "f.gain, f.offset, f.binning, l.status, l.masters_used, l.warnings, l.output_path, l.reason "
            "FROM lights l JOIN frames f ON f.id = l.frame_id"
        )
        args: list[object] = []
        if status:
            sql += " WHERE l.status = ?"
            args.append(status)
        sql += " ORDER BY f.captured_at DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for r in self.conn.execute(sql, args):
            d = dict(r)
            d["masters_used"] = json.loads(str(d["masters_used"]))
            d["warnings"] = json.loads(str(d["warnings"]))
            out.append(d)
        return out

    def frames(
        self, *, state: str | None = None, frame_type: FrameType | None = None, limit: int | None = None
    ) -> list[dict[str, object]]:
        sql = "SELECT * FROM frames WHERE 1=1"
        args: list[object] = []
        if state:
            sql += " AND state = ?"
            args.append(state)
        if frame_type:
            sql += " AND frame_type = ?"
            args.append(frame_type.value)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for r in self.conn.execute(sql, args):
            d = dict(r)
            d["quality_flags"] = json.loads(str(d["quality_flags"]))
            out.append(d)
        return out

    def reject_frame(self, frame_id: int, reason: str) -> None:
        with self.transaction() as c:
            n = c.execute(
                "UPDATE frames SET state = 'rejected', reason = ? WHERE id = ? AND state = 'accumulating'",
                (reason, frame_id),
            ).rowcount
        if n == 0:
            raise LibraryError(f"frame #{frame_id} is not accumulating; only those can be rejected")

    def counts(self) -> dict[str, object]:
        by_state = {
            f"{r[0]}/{r[1]}": int(r[2])
            for r in self.conn.execute(
                "SELECT state, COALESCE(frame_type, '-'), COUNT(*) FROM frames GROUP BY state, frame_type"
            )
        }
        masters = self.conn.execute("SELECT COUNT(*), SUM(superseded_by IS NULL) FROM masters").fetchone()
        jobs = {r[0]: int(r[1]) for r in self.conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")}
        lights = {
            r[0]: int(r[1]) for r in self.conn.execute("SELECT status, COUNT(*) FROM lights GROUP BY status")
        }
        return {
            "frames": by_state,
            "masters": int(masters[0] or 0),
            "current_masters": int(masters[1] or 0),
            "jobs": jobs,
            "lights": lights,
            "schema_version": self.schema_version,
            "database": str(self.db_path),
        }


def master_from_row(row: sqlite3.Row) -> MasterRecord:
    return MasterRecord(
        id=int(row["id"]),
        key=ConfigKey.from_row(row, temperature=row["temperature"]),
        exposure=row["exposure"],
        path=str(row["path"]),
        n_sources=int(row["n_sources"]),
        method=str(row["method"]),
        stats=json.loads(str(row["stats"])),
        created_at=float(row["created_at"]),
        newest_source=row["newest_source"],
        expires_at=float(row["expires_at"]),
        superseded_by=row["superseded_by"],
    )


def cluster_temperatures(rows: list[sqlite3.Row], tolerance: float) -> list[list[sqlite3.Row]]:
    """Split rows (one per rounded temperature) into bands of ±tolerance, each anchored on the
    most used remaining temperature; rows without a temperature form their own group."""
    none = [r for r in rows if r["t"] is None]
    rest = sorted((r for r in rows if r["t"] is not None), key=lambda r: (-int(r["n"]), float(r["t"])))
    clusters: list[list[sqlite3.Row]] = []
    taken: set[int] = set()
    for i, anchor in enumerate(rest):
        if i in taken:
            continue
        members = [anchor]
        taken.add(i)
        for j, other in enumerate(rest):
            if j not in taken and abs(float(other["t"]) - float(anchor["t"])) <= tolerance + 1e-9:
                members.append(other)
                taken.add(j)
        clusters.append(members)
    if none:
        clusters.append(none)
    return clusters


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
