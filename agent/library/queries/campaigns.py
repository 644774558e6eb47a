"""Campaigns: lights and integration time per target and filter, over all nights."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from agent.library.queries.lights import lights_index
from agent.library.store import Library


def campaigns(lib: Library) -> list[dict[str, Any]]:
    """Per target: lights and integration time by filter, over all nights."""
    index = lights_index(lib)
    by_target: dict[str, dict[str, Any]] = {}
    for r in index.rows:
        t = by_target.setdefault(
            str(r["target"]), {"target": r["target"], "nights": set(), "filters": defaultdict(Counter)}
        )
        t["nights"].add(r["night"])
        f = t["filters"][str(r["filter"])]
        f["lights"] += 1
        f["seconds"] += int(float(r["exposure"] or 0))
        if r["status"] == "calibrated":
            f["calibrated"] += 1
    out = []
    for t in by_target.values():
        filters = [
            {"filter": name, "lights": c["lights"], "calibrated": c["calibrated"], "hours": round(c["seconds"] / 3600, 2)}
            for name, c in sorted(t["filters"].items())
        ]
        out.append(
            {
                "target": t["target"],
                "nights": sorted(t["nights"], reverse=True),
                "filters": filters,
                "lights": sum(f["lights"] for f in filters),
                "hours": round(sum(f["hours"] for f in filters), 2),
            }
        )
    out.sort(key=lambda t: -t["hours"])
    return out
