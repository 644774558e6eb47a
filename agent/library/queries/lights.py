"""Lights with their night, target, filter and status chip; one light's masters and warnings."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.library.queries.masters import master_row
from agent.library.store import Library, master_from_row

CHIPS = {
    "calibrated": ("Calibrated", "green"),
    "failed": ("Cal failed", "red"),
    "no_masters": ("No masters", "orange"),
    "rejected": ("Rejected", "grey"),
    "stale": ("Stale masters", "yellow"),
    "pending": ("Pending", "blue"),
}


def night_and_target(path: str, captured_at: float | None, frames_dir: str) -> tuple[str, str]:
    """Our captures live under `frames/<night>/<target>/`; other files are dated by capture time
    (the evening's date: UTC minus 12 h) and named by their folder."""
    p = Path(path)
    if path.startswith(frames_dir + os.sep):
        parts = p.relative_to(frames_dir).parts
        if len(parts) >= 3:
            return parts[0], parts[1]
        if len(parts) == 2:
            return parts[0], "-"
    night = "-"
    if captured_at:
        night = dt.datetime.fromtimestamp(float(captured_at) - 43200, dt.UTC).date().isoformat()
    return night, p.parent.name or "-"


@dataclass
class LightsIndex:
    """Every light with its night, target, filter and chip; built once per library change."""

    rows: list[dict[str, Any]]

    def nights(self) -> list[str]:
        return sorted({str(r["night"]) for r in self.rows}, reverse=True)

    def targets(self) -> list[str]:
        return sorted({str(r["target"]) for r in self.rows})

    def filters(self) -> list[str]:
        return sorted({str(r["filter"]) for r in self.rows})

    def select(
        self, night: str | None = None, target: str | None = None, filt: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            r
            for r in self.rows
            if (not night or r["night"] == night)
            and (not target or r["target"] == target)
            and (not filt or r["filter"] == filt)
            and (not status or r["status"] == status)
        ]

    def summary(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Counts by (night, target, filter) and status, newest night first."""
        groups: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        for r in rows:
            groups[(str(r["night"]), str(r["target"]), str(r["filter"]))][str(r["status"])] += 1
        out = [
            {"night": k[0], "target": k[1], "filter": k[2], "counts": dict(c), "total": sum(c.values())}
            for k, c in groups.items()
        ]
        out.sort(key=lambda g: (g["night"], g["target"], g["filter"]), reverse=True)
        return out


def lights_index(lib: Library) -> LightsIndex:
    frames_dir = str(lib.frames_dir.resolve())
    rows = []
    for r in lib.conn.execute(
        "SELECT f.id, f.path, f.filter, f.exposure, f.temperature, f.captured_at, f.state, f.camera, "
        "l.status, l.output_path, l.warnings FROM frames f LEFT JOIN lights l ON l.frame_id = f.id "
        "WHERE f.frame_type = 'light' AND f.state IN ('light', 'rejected')"
    ):
        night, target = night_and_target(str(r["path"]), r["captured_at"], frames_dir)
        status = "rejected" if r["state"] == "rejected" else str(r["status"] or "pending")
        rows.append(
            {
                "id": int(r["id"]),
                "name": Path(str(r["path"])).name,
                "night": night,
                "target": target,
                "filter": str(r["filter"] or "-"),
                "exposure": r["exposure"],
                "temperature": r["temperature"],
                "captured_at": r["captured_at"],
                "camera": r["camera"],
                "status": status,
                "chip": CHIPS.get(status, (status, "grey")),
                "calibrated": bool(r["output_path"]),
                "warnings": len(json.loads(r["warnings"] or "[]")),
            }
        )
    rows.sort(key=lambda r: (-(r["captured_at"] or 0.0), -r["id"]))
    return LightsIndex(rows)


def light_detail(lib: Library, frame_id: int) -> dict[str, Any] | None:
    row = lib.conn.execute(
        "SELECT f.*, l.status AS light_status, l.masters_used, l.warnings, l.output_path, l.reason AS light_reason, "
        "l.updated_at FROM frames f LEFT JOIN lights l ON l.frame_id = f.id "
        "WHERE f.id = ? AND f.frame_type = 'light'",
        (frame_id,),
    ).fetchone()
    if row is None:
        return None
    d = dict(row)
    night, target = night_and_target(str(d["path"]), d["captured_at"], str(lib.frames_dir.resolve()))
    status = "rejected" if d["state"] == "rejected" else str(d["light_status"] or "pending")
    used = json.loads(d["masters_used"] or "{}")
    warnings = [str(w) for w in json.loads(d["warnings"] or "[]")]
    now = time.time()
    masters = []
    for kind, mid in used.items():
        detail = lib.conn.execute("SELECT * FROM masters WHERE id = ?", (int(mid),)).fetchone()
        if detail is None:
            continue
        masters.append({"kind": kind, **master_row(master_from_row(detail), now)})
    banners = [{"level": _banner_level(w), "text": w} for w in warnings]
    if status == "stale":
        banners.insert(0, {"level": "stale", "text": "a newer master replaced one used here; recalibrate this light"})
    for m in masters:
        if m["superseded_by"] is not None and status != "stale":
            banners.append({"level": "stale", "text": f"master #{m['id']} was superseded by #{m['superseded_by']}"})
    return {
        **{k: d[k] for k in ("id", "camera", "filter", "exposure", "temperature", "set_temp", "ccd_temp",
                             "gain", "offset", "binning", "readout_mode", "captured_at", "width", "height")},
        "name": Path(str(d["path"])).name,
        "night": night,
        "target": target,
        "status": status,
        "chip": CHIPS.get(status, (status, "grey")),
        "reason": d["light_reason"] or d["reason"],
        "calibrated_name": Path(str(d["output_path"])).name if d["output_path"] else None,
        "masters": masters,
        "warnings": warnings,
        "banners": banners,
        "updated_at": d["updated_at"],
    }


def _banner_level(text: str) -> str:
    low = text.lower()
    if "looser" in low:
        return "looser"
    if "temperature" in low or "°c" in low:
        return "temperature"
    if "expired" in low or "stale" in low or "superseded" in low:
        return "stale"
    return "warning"
