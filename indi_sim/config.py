"""Simulator configuration and the simulated clock.

indiserver starts the driver with no arguments, so everything comes from a JSON file named by
`OBSAGENT_SIM_CONFIG` (missing variable = all defaults). Keys are the fields of `SimConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

CONFIG_ENV = "OBSAGENT_SIM_CONFIG"
DRIVER_EXEC = "indi_obsagent_sim"


@dataclass
class SimConfig:
    preset: str = "small"
    width: int | None = None  # override the preset's sensor size
    height: int | None = None
    seed: int = 1
    lat: float = 48.2  # site, degrees north
    lon: float = 16.4  # degrees east
    elevation: float = 200.0
    start: str | None = None  # ISO UTC instant the simulated clock starts at; None = now
    time_factor: float = 1.0  # simulated seconds per wall-clock second
    ambient_c: float = 10.0
    camera_name: str = "Sim Camera"
    wheel_name: str = "Sim Wheel"
    panel_name: str = "Sim FlatPanel"
    mount_name: str = "Sim Mount"
    clock_name: str = "Sim Clock"
    weather_name: str = "Sim Weather"
    filters: list[str] = field(default_factory=lambda: ["L", "R", "G", "B", "Ha", "OIII", "SII"])
    cosmic_rays: bool = True
    cloud_cover: float = 0.0
    light_leak: float = 0.0
    connected: bool = False  # devices start connected (real drivers start disconnected)
    faults: list[str] = field(default_factory=list)  # fault element names switched on at start
    # a weather scenario (YAML path or the same mapping): hosts the weather device, drives the clouds,
    # the faults and the slow motion around transitions (indi_sim.scenario); None = no weather device
    weather_scenario: str | dict[str, Any] | None = None
    # where the driver keeps its clock so a restarted driver resumes simulated time (SimServer sets one)
    clock_file: str | None = None

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "simulator config") -> SimConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
        cfg = cls(**data)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "simulator config") -> None:
        if self.time_factor <= 0:
            raise ConfigError(f"{source}: time_factor must be > 0 (got {self.time_factor})")
        if not -90 <= self.lat <= 90:
            raise ConfigError(f"{source}: lat {self.lat} is outside -90..90")
        if self.start is not None:
            parse_instant(self.start)
        if not self.filters:
            raise ConfigError(f"{source}: filters must name at least one filter")
        if self.weather_scenario is not None:
            from indi_sim.scenario import load_scenario

            load_scenario(self.weather_scenario)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def parse_instant(text: str) -> datetime:
    """ISO 8601 instant; a naive time is UTC ('2026-12-01 15:30' and '2026-12-01T15:30Z' both work)."""
    value = text.strip().replace(" UTC", "").replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"bad start instant {text!r}; use ISO UTC like 2026-12-01T15:30:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def load_config(path: str | os.PathLike[str] | None = None) -> SimConfig:
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        return SimConfig()
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read simulator config {path}: {exc.strerror}; fix {CONFIG_ENV}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object of settings")
    return SimConfig.from_mapping(data, str(path))


def driver_path() -> str:
    """Absolute path of the driver executable (next to this Python, else on PATH)."""
    beside = Path(sys.executable).parent / DRIVER_EXEC
    if beside.exists():
        return str(beside)
    found = shutil.which(DRIVER_EXEC)
    if found:
        return found
    raise ConfigError(f"{DRIVER_EXEC} is not installed; run `pip install -e .` in the obsagent checkout")


class SimClock:
    """Simulated UTC: `start` plus wall time elapsed times the rate; real time with factor 1 and no start.

    The rate is `base_factor`, or `fast_factor` during a fast-forward, and at most `slow_factor`
    for `slow_seconds` of simulated time from each of the `transitions` (a weather scenario's
    changes), so an agent's reaction to them is measured at a pace it can keep. A fast-forward ends
    at the next transition, so a transition is never skipped over.
    """

    def __init__(self, start: datetime | None = None, factor: float = 1.0, transitions: Sequence[datetime] = (),
                 slow_factor: float | None = None, slow_seconds: float = 0.0) -> None:
        self.base_factor = float(factor)
        self.fast_until: datetime | None = None  # running at fast_factor until then, then back to base
        self.fast_factor = self.base_factor
        self.transitions = sorted(set(transitions))
        self.slow_factor = slow_factor
        self.slow_seconds = float(slow_seconds)
        self.version = 0  # counts rate changes, for whoever publishes or saves the clock
        self._start = start or datetime.now(UTC)
        self._mono0 = time.monotonic()
        self.factor = self.rate_at(self._start)

    # ---------------------------------------------------------------- the rate over simulated time
    def slow_until(self, t: datetime) -> datetime | None:
        """End of the slow-motion window `t` is in (None outside every window)."""
        if not self.slow_factor or self.slow_seconds <= 0:
            return None
        i = bisect_right(self.transitions, t)
        if i == 0:
            return None
        end = self.transitions[i - 1] + timedelta(seconds=self.slow_seconds)
        return end if t < end else None

    def rate_at(self, t: datetime) -> float:
        rate = self.fast_factor if self.fast_until is not None and t < self.fast_until else self.base_factor
        if self.slow_factor and self.slow_until(t) is not None:
            rate = min(rate, self.slow_factor)
        return rate

    def next_change(self, t: datetime) -> datetime | None:
        """The first simulated instant after `t` where the rate may change."""
        edges = []
        i = bisect_right(self.transitions, t)
        if i < len(self.transitions):
            edges.append(self.transitions[i])
        slow_end = self.slow_until(t)
        if slow_end is not None:
            edges.append(slow_end)
        if self.fast_until is not None and self.fast_until > t:
            edges.append(self.fast_until)
        return min(edges, default=None)

    def now(self) -> datetime:
        while True:
            t = self._start + timedelta(seconds=(time.monotonic() - self._mono0) * self.factor)
            edge = self.next_change(self._start)
            if edge is None or t < edge:
                return t
            # the rate changed at `edge`: continue from there at the new rate
            self._mono0 += (edge - self._start).total_seconds() / self.factor
            self._start = edge
            if self.fast_until is not None and edge >= self.fast_until:
                self.fast_until = None
            self.factor = self.rate_at(edge)
            self.version += 1

    def _reanchor(self, now: datetime) -> None:
        self._start, self._mono0 = now, time.monotonic()
        self.factor = self.rate_at(now)
        self.version += 1

    def fast_forward(self, until: datetime | None, factor: float) -> None:
        """Run at `factor` until the simulated instant `until` (or the next transition), then fall back.

        A client that dies while fast-forwarding cannot leave the simulator racing through the night.
        `until=None` ends a fast-forward now.
        """
        now = self.now()
        if until is None or until <= now:
            self.fast_until = None
        else:
            i = bisect_right(self.transitions, now)
            self.fast_until = min(until, self.transitions[i]) if i < len(self.transitions) else until
            self.fast_factor = float(factor)
        self._reanchor(now)

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.factor

    async def sleep(self, sim_seconds: float) -> None:
        """Sleep `sim_seconds` of simulated time: a move that starts in slow motion and outlasts it
        (or a fast-forward that begins meanwhile) takes its simulated time, never a wall time fixed
        at its start."""
        import asyncio

        end = self.now() + timedelta(seconds=sim_seconds)
        while self.now() < end:
            await asyncio.sleep(min(0.25, max(self.wall_until(end), 0.0005)))

    def wall_until(self, when: datetime) -> float:
        """Wall seconds until the simulated instant `when`, through every rate change on the way."""
        t, wall = self.now(), 0.0
        while t < when:
            edge = self.next_change(t)
            end = min(edge, when) if edge is not None else when
            wall += (end - t).total_seconds() / self.rate_at(t)
            t = end
        return wall

    def set_factor(self, factor: float) -> None:
        """Change speed without a jump in simulated time."""
        now = self.now()
        self.base_factor = float(factor)
        self.fast_until = None
        self._reanchor(now)

    # ---------------------------------------------------------------- kept across driver restarts
    def state(self) -> dict[str, Any]:
        """The clock's anchor, enough for another process to compute `now()` (wall as Unix time)."""
        self.now()
        return {"sim": self._start.isoformat(), "wall": time.time() - (time.monotonic() - self._mono0),
                "base_factor": self.base_factor, "fast_factor": self.fast_factor,
                "fast_until": self.fast_until.isoformat() if self.fast_until else None}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a saved anchor: simulated time kept running while nobody was there to count it."""
        self._start = datetime.fromisoformat(state["sim"])
        self._mono0 = time.monotonic() - (time.time() - float(state["wall"]))
        self.base_factor, self.fast_factor = float(state["base_factor"]), float(state["fast_factor"])
        self.fast_until = datetime.fromisoformat(state["fast_until"]) if state.get("fast_until") else None
        self.factor = self.rate_at(self._start)
        self.version += 1
        self.now()


def save_clock(path: str | os.PathLike[str], clock: SimClock, start: str | None) -> None:
    """Write the clock's anchor atomically; `start` is the configured start it belongs to."""
    target = Path(path)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({**clock.state(), "start": start}))
    os.replace(tmp, target)


def load_clock_state(path: str | os.PathLike[str], start: str | None) -> dict[str, Any] | None:
    """The saved anchor if there is one for this configured `start` (another start = a new session)."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) and state.get("start") == start else None
