"""How each light was calibrated: with which masters, its warnings and output, so a newer
master can mark the output stale."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from agent.library.database import Database
from agent.library.locations import disk_path


def record_light_calibration(
    db: Database,
    frame_id: int,
    *,
    status: str,
    masters_used: dict[str, int],
    warnings: Sequence[str] = (),
    output_path: str | None = None,
    reason: str | None = None,
) -> None:
    with db.transaction() as c:
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


def list_lights(
    conn: sqlite3.Connection, root: Path, status: str | None = None, limit: int | None = None
) -> list[dict[str, object]]:
    """Lights with their frame's configuration and calibration record, newest capture first;
    `path` and `output_path` where the files are now (`root`: the data folder, resolved)."""
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
    for r in conn.execute(sql, args):
        d = dict(r)
        d["masters_used"] = json.loads(str(d["masters_used"]))
        d["warnings"] = json.loads(str(d["warnings"]))
        d["path"] = str(disk_path(root, str(d["path"])))
        if d["output_path"]:
            d["output_path"] = str(disk_path(root, str(d["output_path"])))
        out.append(d)
    return out
