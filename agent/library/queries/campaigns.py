"""Campaigns: lights and integration time per target and filter, over all nights."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from agent.library.queries.lights import LightsIndex


def campaigns(index: LightsIndex) -> list[dict[str, Any]]:
    """Per target: lights and integration time by filter, over all nights."""
    words = index.words
    calibrated = index.codes.get("calibrated")
    by_target: dict[str, dict[str, Any]] = {}
    for i in range(len(index)):
        target = words[index.target[i]]
        t = by_target.setdefault(target, {"target": target, "nights": set(), "filters": defaultdict(Counter)})
        t["nights"].add(words[index.night[i]])
        f = t["filters"][words[index.filter[i]]]
        f["lights"] += 1
        exposure = index.exposure[i]
        f["seconds"] += int(exposure) if exposure == exposure else 0  # NaN: not recorded
        if index.status[i] == calibrated:
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
