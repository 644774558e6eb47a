"""Nights the agent ran and their morning report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from agent.library.keys import LibraryPolicy
from agent.library.locations import like_under
from agent.library.queries.lights import LightsIndex, lights_index
from agent.library.queries.masters import masters_table
from agent.library.queries.needs_view import needs_table
from agent.library.store import Library

REMAINING = ("missing", "expired", "waiting")
"""The needs a morning report lists as still needed."""


def night_names(root: Path, index: LightsIndex | None = None) -> list[str]:
    names = {p.stem for p in (root / "nights").glob("*.json")} if (root / "nights").is_dir() else set()
    if index is not None:
        names |= {n for n in index.nights() if n != "-"}
    return sorted(names, reverse=True)


def read_progress(root: Path, night: str) -> dict[str, Any] | None:
    """The night's progress file as the night writes it (`<data>/nights/<night>.json`)."""
    if not _is_date(night):
        return None
    try:
        raw = json.loads((root / "nights" / f"{night}.json").read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def night_report(
    lib: Library,
    root: Path,
    night: str,
    policy: LibraryPolicy,
    *,
    index: LightsIndex | None = None,
    needs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The morning report: the shape `obsagent report --json` prints, plus per-target lights.
    `index` and `needs`, when the caller has them at hand, spare reading them again."""
    night_dir = str((root / "frames" / night).resolve())
    pattern = like_under(lib.folder, Path(night_dir))
    captured = {
        str(r[0]): int(r[1])
        for r in lib.conn.execute(
            "SELECT frame_type, COUNT(*) FROM frames WHERE path LIKE ? GROUP BY frame_type", (pattern,)
        )
    }
    index = lights_index(lib) if index is None else index
    tonight = index.select(night=night)
    lights = index.statuses(tonight)
    built = {
        int(r[0])
        for r in lib.conn.execute(
            "SELECT DISTINCT s.master_id FROM master_sources s JOIN frames f ON f.id = s.frame_id WHERE f.path LIKE ?",
            (pattern,),
        )
    }
    masters = [m for m in masters_table(lib, include_superseded=True) if m["id"] in built]
    progress = read_progress(root, night) or {}
    needs = needs_table(lib, policy) if needs is None else needs
    remaining = [n for n in needs if n["kind"] in REMAINING]
    return {
        "night": night,
        "state": progress.get("state"),
        "resumed": progress.get("resumed", 0),
        "captured": captured,
        "lights": lights,
        "masters_built": masters,
        "needs": remaining,
        "warnings": progress.get("warnings", []),
        "events": progress.get("events", []),
        "targets": index.summary(tonight),
        "frames_dir": night_dir,
        "data_dir": str(root),
    }
