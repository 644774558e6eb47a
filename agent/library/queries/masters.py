"""Masters as table rows: age and expiry now, and one master's sources and use."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.library.store import Library, MasterRecord, master_from_row

DAY = 86400.0


def master_row(m: MasterRecord, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    k = m.key
    return {
        **m.as_dict(),
        "describe": k.describe(),
        "name": Path(m.path).name,
        "age_days": round((now - m.created_at) / DAY, 1),
        "expires_in_days": round((m.expires_at - now) / DAY, 1),
        "expired": m.expires_at <= now,
        "newest_source": m.newest_source,
        "forced": bool(m.stats.get("forced")),
        "current": m.superseded_by is None,
    }


def masters_table(lib: Library, *, include_superseded: bool = False) -> list[dict[str, Any]]:
    now = time.time()
    rows = [master_row(m, now) for m in lib.masters(current_only=not include_superseded)]
    rows.sort(key=lambda r: (str(r["frame_type"]), str(r["camera"]), -float(r["created_at"])))
    return rows


def master_detail(lib: Library, master_id: int) -> dict[str, Any] | None:
    row = lib.conn.execute("SELECT * FROM masters WHERE id = ?", (master_id,)).fetchone()
    if row is None:
        return None
    m = master_from_row(row, lib.folder)
    out = master_row(m)
    out["stats"] = m.stats
    out["sources"] = [
        dict(r)
        for r in lib.conn.execute(
            "SELECT f.id, f.path, f.exposure, f.temperature, f.captured_at FROM master_sources s "
            "JOIN frames f ON f.id = s.frame_id WHERE s.master_id = ? ORDER BY f.captured_at, f.id",
            (master_id,),
        )
    ]
    for s in out["sources"]:
        s["name"] = Path(str(s["path"])).name
    out["lights_calibrated"] = int(
        lib.conn.execute(
            "SELECT COUNT(*) FROM lights l WHERE status IN ('calibrated', 'stale') "
            "AND EXISTS (SELECT 1 FROM json_each(l.masters_used) WHERE value = ?)",
            (master_id,),
        ).fetchone()[0]
    )
    return out
