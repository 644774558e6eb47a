"""Reading master rows: what the library holds, and the candidates a light could be matched with."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agent.library.database import LibraryError, key_clause
from agent.library.keys import ConfigKey, FrameType
from agent.library.locations import disk_path


@dataclass(frozen=True)
class MasterRecord:
    """A master as recorded; `path` is where its file is now (the row keeps it relative to the
    data folder)."""

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


def master_from_row(row: sqlite3.Row, root: Path) -> MasterRecord:
    """The record of a `masters` row of the library in data folder `root` (resolved)."""
    return MasterRecord(
        id=int(row["id"]),
        key=ConfigKey.from_row(row, temperature=row["temperature"]),
        exposure=row["exposure"],
        path=str(disk_path(root, str(row["path"]))),
        n_sources=int(row["n_sources"]),
        method=str(row["method"]),
        stats=json.loads(str(row["stats"])),
        created_at=float(row["created_at"]),
        newest_source=row["newest_source"],
        expires_at=float(row["expires_at"]),
        superseded_by=row["superseded_by"],
    )


def list_masters(
    conn: sqlite3.Connection, root: Path, *, current_only: bool = False, frame_type: FrameType | None = None
) -> list[MasterRecord]:
    sql = "SELECT * FROM masters WHERE 1=1"
    args: list[object] = []
    if current_only:
        sql += " AND superseded_by IS NULL"
    if frame_type is not None:
        sql += " AND frame_type = ?"
        args.append(frame_type.value)
    return [master_from_row(r, root) for r in conn.execute(sql + " ORDER BY id", args)]


def find_master(conn: sqlite3.Connection, root: Path, master_id: int) -> MasterRecord:
    row = conn.execute("SELECT * FROM masters WHERE id = ?", (master_id,)).fetchone()
    if row is None:
        raise LibraryError(f"no master #{master_id}; list them with `obsagent library masters`")
    return master_from_row(row, root)


def candidate_masters(
    conn: sqlite3.Connection, root: Path, key: ConfigKey, relax: frozenset[str] = frozenset()
) -> list[MasterRecord]:
    """Masters whose exact key agrees with `key` except in the relaxed fields."""
    skip = set(relax) | ({"exposure_key"} if "exposure" in relax else set())
    where, args = key_clause(key.exact(), frozenset(skip))
    rows = conn.execute(f"SELECT * FROM masters WHERE {where} ORDER BY id", args)
    return [master_from_row(r, root) for r in rows]
