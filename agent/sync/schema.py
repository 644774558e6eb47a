"""The sync tables, kept in the library's database file beside (never inside) its schema.

They have their own version table, `sync_schema_version`, and migrations applied
idempotently by whoever opens the outbox first, so the library's migrations and ours can
evolve independently. Never edit a released entry: append a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.outputs import create_empty

DB_NAME = "library.sqlite"  # the library's file (agent.library.store.DB_NAME)

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE sync_outbox (
            id               INTEGER PRIMARY KEY,
            sha256           TEXT NOT NULL UNIQUE,
            size_bytes       INTEGER NOT NULL,
            local_path       TEXT NOT NULL,
            master_id        INTEGER,
            manifest         TEXT NOT NULL,
            manifest_version INTEGER NOT NULL DEFAULT 1,
            enqueued_at      REAL NOT NULL
        );
        CREATE INDEX sync_outbox_master ON sync_outbox (master_id);
        CREATE INDEX sync_outbox_path ON sync_outbox (local_path);

        CREATE TABLE sync_deliveries (
            outbox_id        INTEGER NOT NULL REFERENCES sync_outbox(id),
            target           TEXT NOT NULL,
            state            TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  REAL NOT NULL DEFAULT 0,
            last_error       TEXT,
            manifest_version INTEGER NOT NULL DEFAULT 0,
            bytes_sent       INTEGER NOT NULL DEFAULT 0,
            confirmed_at     REAL,
            PRIMARY KEY (outbox_id, target)
        );
        CREATE INDEX sync_deliveries_state ON sync_deliveries (target, state, next_attempt_at);

        CREATE TABLE sync_pruned (
            frame_id   INTEGER PRIMARY KEY,
            path       TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            master_id  INTEGER,
            reason     TEXT NOT NULL,
            pruned_at  REAL NOT NULL
        );
        """,
    ),
]


def connect(db: str | Path | sqlite3.Connection) -> tuple[sqlite3.Connection, bool]:
    """A connection to the library database with the sync schema in place; the flag says
    whether the caller opened it (and so must close it)."""
    if isinstance(db, sqlite3.Connection):
        ensure_schema(db)
        return db, False
    path = Path(db)
    if path.is_dir():
        path = path / DB_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    create_empty(path)  # with the user's umask: SQLite alone makes it 0644
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    ensure_schema(conn)
    return conn, True


@contextmanager
def opened(db: str | Path | sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn, owned = connect(db)
    try:
        yield conn
    finally:
        if owned:
            conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE, or a savepoint when the caller already holds a transaction."""
    if conn.in_transaction:
        conn.execute("SAVEPOINT sync_tx")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO sync_tx")
            conn.execute("RELEASE sync_tx")
            raise
        conn.execute("RELEASE sync_tx")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS sync_schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM sync_schema_version").fetchone()
    return int(row[0] or 0)


def ensure_schema(conn: sqlite3.Connection) -> int:
    """Apply every sync migration newer than the database; safe from several processes."""
    version = current_version(conn)
    for number, script in MIGRATIONS:
        if number <= version:
            continue
        with transaction(conn):
            if current_version(conn) >= number:
                continue
            for statement in (s.strip() for s in script.split(";")):
                if statement:
                    conn.execute(statement)
            conn.execute("INSERT INTO sync_schema_version (version) VALUES (?)", (number,))
        version = number
    return version


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None
