"""The library's SQLite file: how it is opened, how writes are grouped, how a key becomes SQL.

Every other library module reads and writes through a connection made here, so the WAL mode,
full fsync and busy timeout are the same for the agent, the CLI and the build worker.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from agent.errors import ObsAgentError
from agent.library.keys import KEY_COLUMNS
from agent.outputs import create_empty

DB_NAME = "library.sqlite"


class LibraryError(ObsAgentError):
    """The library cannot do what was asked."""


class Database(Protocol):
    """What a module that writes needs of the library: its connection for reads, its own
    `transaction()` for writes (so a library opened read-only refuses them in its own words), and
    its data folder (resolved), which recorded paths are relative to."""

    conn: sqlite3.Connection
    folder: Path

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (writes go through `transaction`), rows by column name.
    A new database file is created first with the user's umask (SQLite alone makes it 0644, and
    its -wal and -shm files copy the database's mode), so a shared data folder stays readable."""
    create_empty(db_path)
    conn = sqlite3.connect(db_path, timeout=30.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE: take the write lock up front, so two writers wait rather than deadlock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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
