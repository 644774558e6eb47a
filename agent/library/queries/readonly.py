"""A read-only door to the library for processes that only look (the web dashboard).

`ReadOnlyLibrary` opens the database with SQLite's `mode=ro` so a reader can never write, migrate
or take the write lock: the agent never waits for the web.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.library.store import DB_NAME, Library, LibraryError


class ReadOnlyLibrary(Library):
    """A `Library` over a read-only connection: every read method works, writes raise."""

    def __init__(self, root: Path) -> None:  # noqa: D107 - no super(): it would migrate (write)
        self.root = root
        self.folder = root.resolve()
        self.db_path = root / DB_NAME
        uri = "file:" + urllib.parse.quote(str(self.db_path)) + "?mode=ro"
        self.conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA query_only=ON")
        # Several threads may each hold a connection: keep each page cache small (the OS caches the
        # file, so a page SQLite does not keep is a read from memory, not from the card).
        self.conn.execute("PRAGMA cache_size=-512")
        row = self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        self.schema_version = int(row[0] or 0)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        raise LibraryError("the library is open read-only here; ask the agent to change it")
        yield self.conn  # pragma: no cover


def open_readonly(root: str | os.PathLike[str]) -> ReadOnlyLibrary | None:
    """The library of a data directory, or None while there is none yet."""
    path = Path(root)
    if not (path / DB_NAME).is_file():
        return None
    try:
        return ReadOnlyLibrary(path)
    except sqlite3.Error:
        return None


def library_stamp(root: str | os.PathLike[str]) -> tuple[int, ...]:
    """Changes whenever the agent commits (database or WAL file touched): a cache key."""
    out: list[int] = []
    for name in (DB_NAME, DB_NAME + "-wal"):
        try:
            st = (Path(root) / name).stat()
            out += [st.st_mtime_ns, st.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)
