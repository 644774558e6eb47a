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
    filters: list[str] = field(default_factory=lambda: ["L", "R", "G", "B", "Ha", "OIII", "SII"])
    cosmic_rays: bool = True
    cloud_cover: float = 0.0
    light_leak: float = 0.0
    connected: bool = False  # devices start connected (real drivers start disconnected)
    faults: list[str] = field(default_factory=list)  # fault element names switched on at start

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
    """Simulated UTC: `start` plus wall time elapsed times `factor`; real time with factor 1 and no start."""

    def __init__(self, start: datetime | None = None, factor: float = 1.0) -> None:
        self.factor = float(factor)
        self._start = start or datetime.now(UTC)
        self._mono0 = time.monotonic()
        self.fast_until: datetime | None = None  # running fast until then, then back to base_factor
        self.base_factor = self.factor

    def now(self) -> datetime:
        t = self._start + timedelta(seconds=(time.monotonic() - self._mono0) * self.factor)
        if self.fast_until is not None and t >= self.fast_until:
            # the fast-forward ended at fast_until: continue from there at the base speed
            reached = self._mono0 + (self.fast_until - self._start).total_seconds() / self.factor
            self._start, self._mono0, self.factor = self.fast_until, reached, self.base_factor
            self.fast_until = None
            t = self._start + timedelta(seconds=(time.monotonic() - self._mono0) * self.factor)
        return t

    def fast_forward(self, until: datetime | None, factor: float) -> None:
        """Run at `factor` until the simulated instant `until`, then fall back by itself.

        A client that dies while fast-forwarding cannot leave the simulator racing through the night.
        `until=None` ends a fast-forward now.
        """
        now = self.now()
        if until is None or until <= now:
            self._start, self._mono0, self.factor = now, time.monotonic(), self.base_factor
            self.fast_until = None
            return
        self._start, self._mono0, self.factor = now, time.monotonic(), float(factor)
        self.fast_until = until

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.factor

    def set_factor(self, factor: float) -> None:
        """Change speed without a jump in simulated time."""
        now = self.now()
        self._start, self._mono0, self.factor = now, time.monotonic(), float(factor)
        self.base_factor = self.factor
        self.fast_until = None
