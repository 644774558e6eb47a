"""Choosing the master of each kind for a light, and saying why.

Order of preference: exact key, temperature within the tolerance, not superseded, not
expired, then the newest. A looser match (temperature, offset, gain, readout mode, dark
exposure) is considered only for the fields the sequence file allows, and is then carried
as a warning on the calibrated light; so is an expired master. A CMOS dark of another exposure
is scaled over a master bias (which the light then also needs), never subtracted as it is.
Nothing falls back silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from agent.library.database import LibraryError
from agent.library.keys import ConfigKey, FrameType, LibraryPolicy, SensorKind
from agent.library.master_records import MasterRecord
from agent.library.store import Library

# Relaxations tried in this order when nothing matches exactly (each only if allowed).
_RELAX_ORDER = ("temperature", "exposure", "offset", "readout_mode", "gain")
_FIELD_WORDS = {
    "offset": "offset",
    "gain": "gain",
    "readout_mode": "readout mode",
    "exposure": "exposure",
    "temperature": "temperature",
}


@dataclass(frozen=True)
class MasterChoice:
    """The master picked for one calibration kind (or None), with the reasoning."""

    kind: FrameType
    master: MasterRecord | None
    explanation: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    scale: float | None = None  # CCD dark scaling factor (light exposure / dark exposure)


@dataclass(frozen=True)
class MatchResult:
    light: ConfigKey
    choices: dict[FrameType, MasterChoice]

    @property
    def complete(self) -> bool:
        return all(c.master is not None for c in self.choices.values())

    @property
    def warnings(self) -> list[str]:
        return [w for c in self.choices.values() for w in c.warnings]

    @property
    def masters_used(self) -> dict[str, int]:
        return {k.value: c.master.id for k, c in self.choices.items() if c.master is not None}

    def explain(self) -> list[str]:
        lines = []
        for kind, choice in self.choices.items():
            head = f"{kind.value}: " + (f"master #{choice.master.id}" if choice.master else "none")
            lines.append(head)
            lines.extend(f"  {e}" for e in choice.explanation)
            lines.extend(f"  warning: {w}" for w in choice.warnings)
        return lines


def required_kinds(sensor_kind: SensorKind) -> tuple[FrameType, ...]:
    """CMOS lights take a dark of the same exposure (bias included) and a flat; CCD darks are
    scaled, which needs the bias removed separately."""
    if sensor_kind is SensorKind.CCD:
        return (FrameType.BIAS, FrameType.DARK, FrameType.FLAT)
    return (FrameType.DARK, FrameType.FLAT)


def match_light(
    lib: Library,
    light: ConfigKey,
    exposure: float,
    policy: LibraryPolicy,
    *,
    now: float | None = None,
) -> MatchResult:
    """Pick the best master of every kind the light needs."""
    now = time.time() if now is None else now
    choices = {
        kind: choose_master(lib, light.for_type(kind, exposure), policy, light_exposure=exposure, now=now)
        for kind in required_kinds(light.sensor_kind)
    }
    dark = choices.get(FrameType.DARK)
    if light.sensor_kind is SensorKind.CMOS and dark is not None and dark.scale is not None:
        # A CMOS dark of another exposure is scaled over the bias, never subtracted as it is.
        bias = choose_master(lib, light.for_type(FrameType.BIAS, exposure), policy, now=now)
        choices = {FrameType.BIAS: bias, **choices}
    return MatchResult(light=light, choices=choices)


def choose_master(
    lib: Library,
    wanted: ConfigKey,
    policy: LibraryPolicy,
    *,
    light_exposure: float | None = None,
    now: float | None = None,
) -> MasterChoice:
    """The best current master for `wanted` (a key of the calibration type)."""
    now = time.time() if now is None else now
    kind = wanted.frame_type
    ccd_dark = kind is FrameType.DARK and wanted.sensor_kind is SensorKind.CCD
    exact_relax = frozenset({"exposure"}) if ccd_dark else frozenset()
    explanation: list[str] = []

    picked = _best(lib, wanted, policy, exact_relax, now, explanation, tolerance=policy.temperature_tolerance)
    if picked is not None:
        master, notes = picked
        return _finish(kind, master, explanation, notes, [], ccd_dark, light_exposure)

    # Nothing exact: try each looser field the sequence file allows, then all of them together.
    allowed = [f for f in _RELAX_ORDER if f in policy.looser_matches]
    attempts = [frozenset({f}) for f in allowed]
    if len(allowed) > 1:
        attempts.append(frozenset(allowed))
    for fields in attempts:
        tolerance = _looser_tolerance(policy) if "temperature" in fields else policy.temperature_tolerance
        key_relax = (fields - {"temperature"}) | exact_relax
        trial: list[str] = []
        picked = _best(lib, wanted, policy, frozenset(key_relax), now, trial, tolerance=tolerance)
        if picked is None:
            continue
        master, notes = picked
        diffs = _differences(wanted, master, policy.temperature_tolerance)
        warning = (
            f"looser {kind.value} match allowed by the sequence file: master #{master.id} differs in "
            + "; ".join(diffs)
        )
        explanation.append(f"no exact {kind.value} master; looser match on {', '.join(sorted(fields))}")
        explanation.extend(trial)
        return _finish(kind, master, explanation, notes, [warning], ccd_dark, light_exposure)

    explanation.extend(_near_misses(lib, wanted, policy, exact_relax))
    if not explanation:
        explanation.append(f"no {kind.value} master for {wanted.describe()}")
    return MasterChoice(kind=kind, master=None, explanation=tuple(explanation))


def _finish(
    kind: FrameType,
    master: MasterRecord,
    explanation: list[str],
    notes: list[str],
    warnings: list[str],
    ccd_dark: bool,
    light_exposure: float | None,
) -> MasterChoice:
    scale = None
    if kind is FrameType.DARK and light_exposure is not None and master.exposure:
        ratio = light_exposure / master.exposure
        if ccd_dark or abs(ratio - 1.0) > 1e-6:
            scale = ratio
        if abs(ratio - 1.0) > 1e-6:
            sensor = "CCD" if ccd_dark else "CMOS (allow_looser.scaled_darks)"
            explanation.append(
                f"{sensor} dark scaled by {ratio:.3f} ({light_exposure:g} s light / {master.exposure:g} s dark), "
                "bias removed separately"
            )
    return MasterChoice(
        kind=kind,
        master=master,
        explanation=tuple(explanation),
        warnings=tuple(warnings + notes),
        scale=scale,
    )


def _looser_tolerance(policy: LibraryPolicy) -> float:
    """A looser temperature match still has a limit: the sequence file's `temperature_within`."""
    within = policy.looser_temperature_within
    return policy.temperature_tolerance if within is None else max(within, policy.temperature_tolerance)


def _temperature_ok(wanted: float | None, have: float | None, tolerance: float) -> bool:
    if wanted is None or have is None:
        return wanted is None and have is None or tolerance == float("inf")
    return abs(have - wanted) <= tolerance + 1e-9


def _best(
    lib: Library,
    wanted: ConfigKey,
    policy: LibraryPolicy,
    relax: frozenset[str],
    now: float,
    explanation: list[str],
    *,
    tolerance: float,
) -> tuple[MasterRecord, list[str]] | None:
    candidates = lib.candidate_masters(wanted, relax)
    usable: list[MasterRecord] = []
    for m in candidates:
        if m.superseded_by is not None:
            explanation.append(f"master #{m.id} skipped: superseded by #{m.superseded_by}")
            continue
        if not _temperature_ok(wanted.temperature, m.key.temperature, tolerance):
            explanation.append(
                f"master #{m.id} skipped: {_temp(m.key.temperature)} is outside "
                f"±{policy.temperature_tolerance:g} °C of {_temp(wanted.temperature)}"
            )
            continue
        usable.append(m)
    if not usable:
        return None
    fresh = [m for m in usable if m.expires_at > now]
    if not fresh and not policy.expired_masters:
        explanation.extend(
            f"master #{m.id} not used: expired on {_date(m.expires_at)} "
            "(allow it with allow_looser.expired_masters or --allow-looser expired); capture a new one"
            for m in usable
        )
        return None
    pool = fresh or usable

    def rank(m: MasterRecord) -> tuple[float, ...]:
        exact_exposure = 0.0 if m.key.exposure_key == wanted.exposure_key else 1.0
        dtemp = abs((m.key.temperature or 0.0) - (wanted.temperature or 0.0))
        if tolerance != float("inf"):
            dtemp = 0.0  # within tolerance all temperatures are equal; recency decides
        # CCD darks: prefer the exact exposure, then the longest (least noise amplified by scaling).
        return (exact_exposure, dtemp, -(m.exposure or 0.0) * exact_exposure, -m.created_at, -m.id)

    pool.sort(key=rank)
    best = pool[0]
    others = [f"#{m.id}" for m in pool[1:]]
    why = f"master #{best.id}: {best.key.describe()}"
    if wanted.temperature is not None and best.key.temperature is not None:
        why += f"; {_temp(best.key.temperature)} vs light {_temp(wanted.temperature)}"
    if others:
        why += f"; newest of {len(pool)} candidates (also {', '.join(others)})"
    explanation.append(why)
    notes = []
    if not fresh:
        notes.append(f"master #{best.id} expired on {_date(best.expires_at)}; capture a new one")
    return best, notes


def _differences(wanted: ConfigKey, m: MasterRecord, tolerance: float) -> list[str]:
    out = []
    for field in ("offset", "gain", "readout_mode"):
        a, b = getattr(wanted, field), getattr(m.key, field)
        if a != b:
            out.append(f"{_FIELD_WORDS[field]} {b} vs {a}")
    if wanted.exposure_key != m.key.exposure_key and wanted.frame_type is FrameType.DARK:
        out.append(f"exposure {m.key.exposure_key} s vs {wanted.exposure_key} s")
    if not _temperature_ok(wanted.temperature, m.key.temperature, tolerance):
        out.append(f"temperature {_temp(m.key.temperature)} vs {_temp(wanted.temperature)}")
    return out


def _near_misses(lib: Library, wanted: ConfigKey, policy: LibraryPolicy, base: frozenset[str]) -> list[str]:
    """Explain an empty choice: masters that differ in one field the sequence file keeps strict."""
    out = []
    seen: set[int] = set()
    for field in _RELAX_ORDER:
        relax = base | ({field} if field != "temperature" else set())
        tolerance = _looser_tolerance(policy) if field == "temperature" else policy.temperature_tolerance
        for m in lib.candidate_masters(wanted, frozenset(relax)):
            if m.id in seen or m.superseded_by is not None:
                continue
            if not _temperature_ok(wanted.temperature, m.key.temperature, tolerance):
                continue
            diffs = _differences(wanted, m, policy.temperature_tolerance)
            if not diffs:
                continue
            seen.add(m.id)
            out.append(
                f"master #{m.id} not used: {'; '.join(diffs)} "
                f"(looser {field} match not allowed by the sequence file)"
            )
    return out


def _temp(t: float | None) -> str:
    return "no temperature" if t is None else f"{t:+.1f} °C"


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def light_key(lib: Library, frame_id: int) -> tuple[ConfigKey, float]:
    """The key and exposure of a recorded light."""
    row = lib.conn.execute("SELECT * FROM frames WHERE id = ?", (frame_id,)).fetchone()
    if row is None or row["frame_type"] != FrameType.LIGHT.value:
        raise LibraryError(f"frame #{frame_id} is not a light; list lights with `obsagent library lights`")
    return ConfigKey.from_row(row, temperature=row["temperature"]), float(row["exposure"])


def with_temperature(key: ConfigKey, temperature: float | None) -> ConfigKey:
    return replace(key, temperature=temperature)
