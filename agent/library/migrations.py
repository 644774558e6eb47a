"""Ordered schema migrations of the library database.

Each entry moves the schema one version forward and is applied once, in its own
transaction; `schema_version` records the newest applied. Never edit a released entry:
append a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from agent.library.database import LibraryError
from agent.library.locations import database_folder, relative_paths

# A step is SQL, or a function given the connection and the data folder (the database's own).
Step = str | Callable[[sqlite3.Connection, Path], None]

_KEY_COLUMNS_SQL = """
    frame_type   TEXT,
    camera       TEXT,
    sensor_kind  TEXT,
    width        INTEGER,
    height       INTEGER,
    binning      TEXT,
    gain         REAL,
    offset       REAL,
    readout_mode TEXT,
    bit_depth    INTEGER,
    filter       TEXT,
    exposure_key REAL,
"""

MIGRATIONS: list[tuple[int, Step]] = [
    (
        1,
        f"""
        CREATE TABLE cameras (
            name        TEXT PRIMARY KEY,
            sensor_kind TEXT NOT NULL CHECK (sensor_kind IN ('cmos', 'ccd')),
            updated_at  REAL NOT NULL
        );

        CREATE TABLE frames (
            id           INTEGER PRIMARY KEY,
            path         TEXT NOT NULL UNIQUE,
            checksum     TEXT NOT NULL,
            size_bytes   INTEGER NOT NULL,
            {_KEY_COLUMNS_SQL}
            exposure     REAL,
            set_temp     REAL,
            ccd_temp     REAL,
            temperature  REAL,
            captured_at  REAL,
            ingested_at  REAL NOT NULL,
            dialect      TEXT,
            quality_flags TEXT NOT NULL DEFAULT '[]',
            state        TEXT NOT NULL CHECK (state IN
                         ('accumulating', 'in_master', 'rejected', 'quarantined', 'light')),
            reason       TEXT,
            master_id    INTEGER REFERENCES masters(id)
        );
        CREATE INDEX frames_group ON frames (state, frame_type, camera, sensor_kind, width, height,
            binning, gain, offset, readout_mode, bit_depth, filter, exposure_key, temperature);
        CREATE INDEX frames_captured ON frames (frame_type, captured_at);
        CREATE INDEX frames_checksum ON frames (checksum);
        CREATE INDEX frames_master ON frames (master_id);

        CREATE TABLE masters (
            id            INTEGER PRIMARY KEY,
            {_KEY_COLUMNS_SQL}
            temperature   REAL,
            exposure      REAL,
            path          TEXT NOT NULL UNIQUE,
            n_sources     INTEGER NOT NULL,
            method        TEXT NOT NULL,
            stats         TEXT NOT NULL DEFAULT '{{}}',
            sources_hash  TEXT NOT NULL,
            created_at    REAL NOT NULL,
            newest_source REAL,
            expires_at    REAL NOT NULL,
            superseded_by INTEGER REFERENCES masters(id),
            job_id        INTEGER
        );
        CREATE INDEX masters_key ON masters (frame_type, camera, sensor_kind, width, height, binning,
            gain, offset, readout_mode, bit_depth, filter, exposure_key);

        CREATE TABLE master_sources (
            master_id INTEGER NOT NULL REFERENCES masters(id),
            frame_id  INTEGER NOT NULL REFERENCES frames(id),
            PRIMARY KEY (master_id, frame_id)
        );

        CREATE TABLE lights (
            frame_id      INTEGER PRIMARY KEY REFERENCES frames(id),
            status        TEXT NOT NULL CHECK (status IN
                          ('pending', 'calibrated', 'failed', 'no_masters', 'stale')),
            masters_used  TEXT NOT NULL DEFAULT '{{}}',
            warnings      TEXT NOT NULL DEFAULT '[]',
            output_path   TEXT,
            reason        TEXT,
            updated_at    REAL NOT NULL
        );
        CREATE INDEX lights_status ON lights (status);

        CREATE TABLE jobs (
            id           INTEGER PRIMARY KEY,
            kind         TEXT NOT NULL,
            frame_type   TEXT NOT NULL,
            group_key    TEXT NOT NULL,
            frame_ids    TEXT NOT NULL,
            inputs       TEXT NOT NULL DEFAULT '{{}}',
            state        TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'dismissed')),
            reason       TEXT,
            pid          INTEGER,
            pid_start    TEXT,
            attempts     INTEGER NOT NULL DEFAULT 0,
            created_at   REAL NOT NULL,
            started_at   REAL,
            finished_at  REAL,
            master_id    INTEGER REFERENCES masters(id)
        );
        CREATE INDEX jobs_state ON jobs (state);
        """,
    ),
    # Paths inside the data folder become relative to it, so the folder can be moved.
    (2, relative_paths),
]


def newest_known() -> int:
    """The newest schema this obsagent knows."""
    return max(number for number, _ in MIGRATIONS)


def newer_than_ours(version: int, db_path: object) -> str | None:
    """Why a library of `version` must not be used by this obsagent, or None."""
    if version <= newest_known():
        return None
    return (
        f"{db_path} was written by a newer obsagent (library schema {version}; this one reads up to "
        f"{newest_known()}); it is left untouched: upgrade obsagent, or use another --data directory"
    )


def check_not_newer(db_path: Path) -> None:
    """Refuse a library written by a newer obsagent before anything opens it for writing (even
    switching it to WAL would change the file). Opened immutable, so not even SQLite's -wal and
    -shm companions appear; a version only in an unmerged WAL is caught by `migrate`. A file it
    cannot read this way is left to the normal open, which reports it."""
    if not db_path.is_file():
        return
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return
    try:
        tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone() if "schema_version" in tables else None
    except sqlite3.Error:
        return
    finally:
        conn.close()
    if row is None:
        if tables:  # another program's database: never add our tables to it
            raise LibraryError(
                f"{db_path} is another program's SQLite database (tables: {', '.join(sorted(tables)[:3])}), "
                "not an obsagent library; it is left untouched: point --data at another folder"
            )
        return
    reason = newer_than_ours(int(row[0] or 0), db_path)
    if reason is not None:
        raise LibraryError(reason)


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database; returns the resulting version."""
    version = current_version(conn)
    reason = newer_than_ours(version, "the library")
    if reason is not None:
        raise LibraryError(reason)
    for number, script in MIGRATIONS:
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            if current_version(conn) >= number:
                conn.execute("COMMIT")
                continue
            if callable(script):
                script(conn, database_folder(conn))
            else:
                for statement in _statements(script):
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
