"""Frames accumulating toward a master, by configuration, and how groups are named in URLs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.library.keys import ConfigKey, LibraryPolicy
from agent.library.queries.rows import JsonRows
from agent.library.store import Group, Library


def group_ident(group: Group) -> str:
    """A group's identity in URLs and control requests: its key and set-point as JSON."""
    return json.dumps(group.key.as_dict(), sort_keys=True, separators=(",", ":"))


def key_from_ident(ident: str) -> ConfigKey | None:
    try:
        raw = json.loads(ident)
        return ConfigKey.from_row(raw, temperature=raw.get("temperature"))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def frame_groups(lib: Library, policy: LibraryPolicy) -> list[dict[str, Any]]:
    """Accumulating frames by configuration, with progress toward the next master."""
    out = []
    for g in lib.groups(policy):
        target = policy.min_for(g.key.frame_type)
        out.append(
            {
                "ident": group_ident(g),
                "frame_type": g.key.frame_type.value,
                "describe": g.key.describe(),
                "key": g.key.as_dict(),
                "count": g.count,
                "target": target,
                "percent": min(100, round(100 * g.count / target)),
                "first_captured": g.first_captured,
                "last_captured": g.last_captured,
            }
        )
    out.sort(key=lambda r: (str(r["frame_type"]), -int(str(r["count"]))))
    return out


def groups_view(lib: Library, policy: LibraryPolicy) -> JsonRows:
    """`frame_groups` kept as JSON texts (thousands of groups with 50,000 frames)."""
    rows = JsonRows()
    for row in frame_groups(lib, policy):
        rows.append(row)
    return rows.seal()


def group_frames(lib: Library, policy: LibraryPolicy, ident: str, limit: int = 500) -> list[dict[str, Any]] | None:
    """The frames of one accumulating group, or None when no such group exists now."""
    key = key_from_ident(ident)
    if key is None:
        return None
    for g in lib.groups(policy, key.frame_type):
        if g.key == key:
            ids = lib.group_frame_ids(g)[:limit]
            marks = ",".join("?" * len(ids))
            rows = lib.conn.execute(
                f"SELECT id, path, exposure, temperature, captured_at FROM frames WHERE id IN ({marks}) "
                "ORDER BY captured_at, id",
                ids,
            ).fetchall()
            return [{**dict(r), "name": Path(str(r["path"])).name} for r in rows]
    return None
