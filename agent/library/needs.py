"""What calibration is missing, ordered by urgency: the agent's input for choosing what to
capture in a window, and `obsagent library needs` for the user.

Everything is grouped in SQL over indexed columns, so the answer stays well under a second
with tens of thousands of frames; Python only walks the distinct configurations.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agent.library.build_plan import plan as plan_builds
from agent.library.grouping import Group, cluster_temperatures
from agent.library.keys import KEY_COLUMNS, ConfigKey, FrameType, LibraryPolicy, SensorKind
from agent.library.master_records import MasterRecord
from agent.library.match import choose_master, required_kinds
from agent.library.store import Library

DAY = 86400.0


@dataclass(frozen=True)
class PlannedLight:
    """A light configuration the sequence file will capture."""

    key: ConfigKey
    exposure: float


@dataclass(frozen=True)
class Need:
    """One thing the library lacks or is working on.

    kind: missing (no usable master), expired, waiting (enough frames, cannot build yet),
    expiring (master ages out within the horizon), building (job queued or running),
    capturing (the agent says so), accumulating (progress towards the next master).
    """

    kind: str
    frame_type: FrameType
    key: ConfigKey
    have: int
    target: int
    reason: str
    urgency: float
    source: str  # plan | lights | library | agent
    expires_at: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "frame_type": self.frame_type.value,
            "key": self.key.as_dict(),
            "description": self.key.describe(),
            "have": self.have,
            "target": self.target,
            "reason": self.reason,
            "urgency": round(self.urgency, 3),
            "source": self.source,
            "expires_at": self.expires_at,
        }


def recent_lights(lib: Library, policy: LibraryPolicy, since: float) -> list[tuple[ConfigKey, float, int]]:
    """Distinct light configurations (key, exposure, count) captured since `since`."""
    cols = ", ".join(KEY_COLUMNS)
    rows = lib.conn.execute(
        f"SELECT {cols}, ROUND(exposure, 3) AS e, ROUND(temperature, 1) AS t, COUNT(*) AS n "
        f"FROM frames WHERE frame_type = 'light' AND captured_at >= ? GROUP BY {cols}, e, t",
        (since,),
    ).fetchall()
    by_key: dict[tuple[object, ...], list[sqlite3.Row]] = {}
    for r in rows:
        by_key.setdefault((*tuple(r[c] for c in KEY_COLUMNS), r["e"]), []).append(r)
    out = []
    for group_rows in by_key.values():
        for cluster in cluster_temperatures(group_rows, policy.temperature_tolerance):
            first = cluster[0]
            out.append(
                (
                    ConfigKey.from_row(first, temperature=first["t"]),
                    float(first["e"] or 0.0),
                    sum(int(c["n"]) for c in cluster),
                )
            )
    return out


def _group_for(
    groups: dict[tuple[object, ...], list[Group]], wanted: ConfigKey, tolerance: float
) -> Group | None:
    best = None
    for g in groups.get(wanted.exact(), ()):
        if (g.key.temperature is None) != (wanted.temperature is None):
            continue
        if (
            g.key.temperature is not None
            and wanted.temperature is not None
            and abs(g.key.temperature - wanted.temperature) > tolerance + 1e-9
        ):
            continue
        if best is None or g.count > best.count:
            best = g
    return best


class _Masters:
    """Current masters indexed by exact key, so each requirement is a dictionary look-up."""

    def __init__(self, masters: list[MasterRecord]) -> None:
        self.by_key: dict[tuple[object, ...], list[MasterRecord]] = {}
        self.by_key_any_exposure: dict[tuple[object, ...], list[MasterRecord]] = {}
        for m in masters:
            exact = m.key.exact()
            self.by_key.setdefault(exact, []).append(m)
            self.by_key_any_exposure.setdefault(exact[:-1], []).append(m)

    def usable(self, wanted: ConfigKey, tolerance: float) -> list[MasterRecord]:
        scalable = wanted.frame_type is FrameType.DARK and wanted.sensor_kind is SensorKind.CCD
        exact = wanted.exact()
        pool = self.by_key_any_exposure.get(exact[:-1], []) if scalable else self.by_key.get(exact, [])
        out = []
        for m in pool:
            t, w = m.key.temperature, wanted.temperature
            if (t is None) != (w is None):
                continue
            if t is not None and w is not None and abs(t - w) > tolerance + 1e-9:
                continue
            out.append(m)
        return out


def needs(
    lib: Library,
    policy: LibraryPolicy,
    *,
    plan: Sequence[PlannedLight] = (),
    light_days: float = 30.0,
    expiring_days: float = 14.0,
    capturing: Sequence[ConfigKey] = (),
    now: float | None = None,
) -> list[Need]:
    """Everything missing or in progress, most urgent first."""
    now = time.time() if now is None else now
    group_list = lib.groups(policy)
    groups: dict[tuple[object, ...], list[Group]] = {}
    for g in group_list:
        groups.setdefault(g.key.exact(), []).append(g)
    current = _Masters(lib.masters(current_only=True))
    out: list[Need] = []
    seen: set[tuple[object, ...]] = set()

    requirements: list[tuple[ConfigKey, float, str, float]] = [
        (p.key, p.exposure, "plan", 100.0) for p in plan
    ]
    requirements += [
        (k, e, "lights", 80.0) for k, e, _n in recent_lights(lib, policy, now - light_days * DAY)
    ]
    for light, exposure, source, base in requirements:
        for kind in required_kinds(light.sensor_kind):
            wanted = light.for_type(kind, exposure)
            ident = (*wanted.exact(), wanted.temperature)
            if ident in seen:
                continue
            usable = current.usable(wanted, policy.temperature_tolerance)
            if any(m.expires_at > now for m in usable):
                continue
            master: MasterRecord | None = max(usable, key=lambda m: m.created_at) if usable else None
            if master is None and policy.looser_matches:
                master = choose_master(lib, wanted, policy, light_exposure=exposure, now=now).master
                if master is not None and master.expires_at > now:
                    continue
            seen.add(ident)
            group = _group_for(groups, wanted, policy.temperature_tolerance)
            have = group.count if group else 0
            target = policy.min_for(kind)
            if master is not None:
                out.append(
                    Need("expired", kind, wanted, have, target,
                         f"master #{master.id} expired; capture {max(target - have, 0)} more {kind.value} frames",
                         base - 20.0, source, master.expires_at)
                )  # fmt: skip
                continue
            if have >= target:
                reason = f"no {kind.value} master for these lights; {have} frames are ready to build"
            else:
                reason = f"no {kind.value} master for these lights; capture {target - have} more"
            if kind is FrameType.FLAT:
                reason += " (and dark flats at the flat exposure" + (", or a master bias)" if policy.bias_for_flats else ")")
            if kind is FrameType.DARK and light.sensor_kind.value == "ccd":
                reason = f"no dark master for this CCD (any exposure, scaled); capture {max(target - have, 0)} more"
            out.append(
                Need("missing", kind, wanted, have, target, reason, base + min(have / target, 1.0), source)
            )

    for w in plan_builds(lib, policy, groups=group_list)[1]:
        out.append(
            Need("waiting", w.key.frame_type, w.key, w.count, policy.min_for(w.key.frame_type), w.reason, 50.0,
                 "library")
        )  # fmt: skip

    horizon = now + expiring_days * DAY
    for m in lib.masters(current_only=True):
        if now < m.expires_at <= horizon:
            days_left = (m.expires_at - now) / DAY
            out.append(
                Need("expiring", m.key.frame_type, m.key, 0, policy.min_for(m.key.frame_type),
                     f"master #{m.id} expires in {days_left:.1f} days", 40.0 + (expiring_days - days_left),
                     "library", m.expires_at)
            )  # fmt: skip

    for r in lib.conn.execute(
        "SELECT id, frame_type, state, inputs, frame_ids FROM jobs WHERE state IN ('pending', 'running')"
    ):
        key = ConfigKey.from_row(
            json.loads(r["inputs"])["key"], temperature=json.loads(r["inputs"])["key"]["temperature"]
        )
        n = len(json.loads(r["frame_ids"]))
        out.append(
            Need("building", key.frame_type, key, n, n, f"build job #{r['id']} {r['state']}", 30.0, "library")
        )

    for key in capturing:
        found = _group_for(groups, key, policy.temperature_tolerance)
        have = found.count if found else 0
        out.append(
            Need("capturing", key.frame_type, key, have, policy.min_for(key.frame_type), "capture in progress", 25.0,
                 "agent")
        )  # fmt: skip

    for g in group_list:
        target = policy.min_for(g.key.frame_type)
        if g.count >= target:
            continue
        out.append(
            Need("accumulating", g.key.frame_type, g.key, g.count, target,
                 f"{g.count}/{target} frames towards the next master", 10.0 + 10.0 * g.count / target, "library")
        )  # fmt: skip

    out.sort(key=lambda n: -n.urgency)
    return out
