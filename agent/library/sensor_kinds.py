"""The sensor kind of each camera: not in FITS headers, so the library keeps it per camera name."""

from __future__ import annotations

import sqlite3
import time

from agent.library.database import Database
from agent.library.keys import SensorKind


def camera_kind(conn: sqlite3.Connection, name: str) -> SensorKind:
    """The recorded kind, CMOS when the camera was never named."""
    row = conn.execute("SELECT sensor_kind FROM cameras WHERE name = ?", (name,)).fetchone()
    return SensorKind(row[0]) if row else SensorKind.CMOS


def set_camera_kind(db: Database, name: str, kind: SensorKind) -> int:
    """Record a camera's sensor kind; frames and masters already recorded follow it. Returns
    how many frames changed."""
    with db.transaction() as c:
        c.execute(
            "INSERT INTO cameras (name, sensor_kind, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET sensor_kind = excluded.sensor_kind, "
            "updated_at = excluded.updated_at",
            (name, kind.value, time.time()),
        )
        n = c.execute("UPDATE frames SET sensor_kind = ? WHERE camera = ?", (kind.value, name)).rowcount
        c.execute("UPDATE masters SET sensor_kind = ? WHERE camera = ?", (kind.value, name))
    return int(n)


def list_cameras(conn: sqlite3.Connection) -> list[dict[str, object]]:
    rows = conn.execute(
        "SELECT c.name, c.sensor_kind, COUNT(f.id) AS frames FROM cameras c "
        "LEFT JOIN frames f ON f.camera = c.name GROUP BY c.name ORDER BY c.name"
    ).fetchall()
    return [dict(r) for r in rows]


def ensure_camera(c: sqlite3.Connection, name: str) -> SensorKind:
    """Inside an open transaction: record a camera seen for the first time (as CMOS) and
    return its kind, so a frame's row carries the kind its camera has."""
    c.execute(
        "INSERT OR IGNORE INTO cameras (name, sensor_kind, updated_at) VALUES (?, 'cmos', ?)",
        (name, time.time()),
    )
    row = c.execute("SELECT sensor_kind FROM cameras WHERE name = ?", (name,)).fetchone()
    return SensorKind(row[0])
