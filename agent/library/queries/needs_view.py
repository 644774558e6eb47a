"""What the library needs, as rows, with the recent lights that need each missing master."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from agent.library.keys import KEY_COLUMNS, ConfigKey, FrameType, LibraryPolicy
from agent.library.queries.lights import night_and_target
from agent.library.queries.masters import DAY
from agent.library.store import Library


def needs_table(lib: Library, policy: LibraryPolicy, light_days: float = 30.0) -> list[dict[str, Any]]:
    """`needs()` as plain rows; uncovered configurations list the lights that need them."""
    from agent.library.needs import needs

    items = needs(lib, policy, light_days=light_days)
    recent = RecentLights(lib, time.time() - light_days * DAY)
    out = []
    for n in items:
        row = n.as_dict()
        row["percent"] = min(100, round(100 * n.have / n.target)) if n.target else 100
        row["lights"] = recent.needing(n.key, policy) if n.kind in ("missing", "expired") else []
        out.append(row)
    return out


_LIGHT_FIELDS = ("camera", "sensor_kind", "width", "height", "binning", "gain", "offset", "readout_mode", "bit_depth")


class RecentLights:
    """Lights of the last days, read once and bucketed by the key fields every master shares,
    so each need finds its lights with a dictionary look-up."""

    def __init__(self, lib: Library, since: float) -> None:
        frames_dir = str(lib.frames_dir.resolve())
        self.buckets: dict[tuple[object, ...], list[tuple[str, float | None, float | None, tuple[str, str]]]] = {}
        for r in lib.conn.execute(
            f"SELECT path, filter, exposure, temperature, captured_at, {', '.join(_LIGHT_FIELDS)} FROM frames "
            "WHERE frame_type = 'light' AND captured_at >= ?",
            (since,),
        ):
            base = tuple(r[c] for c in _LIGHT_FIELDS)
            where = night_and_target(str(r["path"]), r["captured_at"], frames_dir)
            self.buckets.setdefault(base, []).append((str(r["filter"] or "-"), r["exposure"], r["temperature"], where))

    def needing(self, wanted: ConfigKey, policy: LibraryPolicy) -> list[dict[str, Any]]:
        values = dict(zip(KEY_COLUMNS, wanted.exact(), strict=True))
        exact_exposure = wanted.exposure_key is not None and not (
            wanted.frame_type is FrameType.DARK and wanted.sensor_kind.value == "ccd"
        )
        counts: Counter[tuple[str, str, str]] = Counter()
        for filt, exposure, temperature, (night, target) in self.buckets.get(tuple(values[c] for c in _LIGHT_FIELDS), []):
            if wanted.frame_type is FrameType.FLAT and filt != (wanted.filter or "-"):
                continue
            if wanted.temperature is not None and (
                temperature is None or abs(temperature - wanted.temperature) > policy.temperature_tolerance + 1e-9
            ):
                continue
            if exact_exposure and (exposure is None or abs(exposure - float(wanted.exposure_key or 0)) >= 0.5):
                continue
            counts[(night, target, filt)] += 1
        return [
            {"night": k[0], "target": k[1], "filter": k[2], "count": n}
            for k, n in sorted(counts.items(), reverse=True)[:20]
        ]
