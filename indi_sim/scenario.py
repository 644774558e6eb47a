"""Weather scenario: what the sky and the weather station do over simulated time, and which faults happen.

A YAML file (or the same mapping inline in the simulator config) validated here; every error is one
line `FILE:LINE: key.path: message` naming the fix. Instants are absolute ISO UTC ("2026-12-02T22:30Z")
or clock times in the scenario's `timezone` on a numbered night: night 1 is the evening of
`first_night`, a time from 12:00 on is that evening, a time before 12:00 the next morning.
Reference: docs/simulator.md (Weather scenario).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.errors import ConfigError

Quantity = Literal["clouds", "rain", "humidity", "wind", "temperature"]
QUANTITIES: tuple[Quantity, ...] = ("clouds", "rain", "humidity", "wind", "temperature")
FaultKind = Literal["server_loss", "driver_crash", "stale"]
CLOCK_TIME = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")
DOCS = "docs/simulator.md (Weather scenario)"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Limit(_Strict):
    """Ok range of one quantity, as the INDI weather interface's MIN_OK, MAX_OK and PERC_WARN."""

    min_ok: float
    max_ok: float
    warn_percent: float = Field(15.0, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Limit:
        if self.max_ok < self.min_ok:
            raise ValueError(f"max_ok {self.max_ok:g} is below min_ok {self.min_ok:g}; swap them")
        return self


# The stock weather simulator's ranges (weathersimulator.cpp addParameter), clouds as openweathermap.cpp
# names them but with an Ok range an observatory would use (Warning above 40 %, Alert above 50 %).
DEFAULT_LIMITS: dict[str, Limit] = {
    "clouds": Limit(min_ok=0, max_ok=50, warn_percent=20),
    "rain": Limit(min_ok=0, max_ok=0, warn_percent=0),
    "humidity": Limit(min_ok=0, max_ok=100, warn_percent=15),
    "wind": Limit(min_ok=0, max_ok=20, warn_percent=15),
    "temperature": Limit(min_ok=-10, max_ok=30, warn_percent=15),
}


class Conditions(_Strict):
    """Values of the quantities; a period sets only those it names."""

    clouds: float | None = Field(None, ge=0, le=100, description="cloud cover, %")
    rain: float | None = Field(None, ge=0, description="rain rate, mm/h")
    humidity: float | None = Field(None, ge=0, le=100, description="relative humidity, %")
    wind: float | None = Field(None, ge=0, description="wind speed, km/h")
    temperature: float | None = Field(None, ge=-80, le=60, description="air temperature, C")


class Clear(Conditions):
    """The weather outside every period."""

    clouds: float | None = Field(0.0, ge=0, le=100)
    rain: float | None = Field(0.0, ge=0)
    humidity: float | None = Field(60.0, ge=0, le=100)
    wind: float | None = Field(5.0, ge=0)
    temperature: float | None = Field(5.0, ge=-80, le=60)


class Period(Conditions):
    night: int | None = Field(None, ge=1)
    start: str = Field(alias="from")
    to: str


class Fault(_Strict):
    kind: FaultKind
    night: int | None = Field(None, ge=1)
    at: str
    seconds: float = Field(0.0, ge=0, description="server_loss: down for; stale: no updates for (simulated s)")

    @model_validator(mode="after")
    def _duration(self) -> Fault:
        if self.kind in ("server_loss", "stale") and self.seconds <= 0:
            raise ValueError(f"{self.kind} needs seconds: N > 0 (how long, in simulated seconds)")
        if self.kind == "driver_crash" and self.seconds:
            raise ValueError("driver_crash takes no seconds (indiserver restarts the driver at once); remove it")
        return self


class SlowMotion(_Strict):
    factor: float = Field(gt=0, description="time factor around each transition")
    seconds: float = Field(gt=0, description="simulated seconds of slow motion from each transition")


class Scenario(_Strict):
    first_night: date | None = None
    timezone: str = "UTC"
    update_period: float = Field(60.0, ge=0, le=3600, description="WEATHER_UPDATE PERIOD, simulated s")
    slow_motion: SlowMotion | None = None
    clear: Clear = Field(default_factory=lambda: Clear.model_validate({}))
    limits: dict[Quantity, Limit] = Field(default_factory=dict)
    periods: list[Period] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin or UTC") from None
        return value

    @model_validator(mode="after")
    def _instants(self) -> Scenario:
        for i, p in enumerate(self.periods):
            start = self.instant(p.start, p.night, f"periods.{i}.from")
            end = self.instant(p.to, p.night, f"periods.{i}.to")
            if end <= start:
                raise ValueError(f"periods.{i}: 'to' ({p.to}) is not after 'from' ({p.start}); fix the times")
        for i, f in enumerate(self.faults):
            self.instant(f.at, f.night, f"faults.{i}.at")
        return self

    # ---------------------------------------------------------------- times
    def instant(self, text: str, night: int | None, where: str = "time") -> datetime:
        """A scenario time as a UTC instant (see the module docstring for the rules)."""
        text = str(text).strip()
        if CLOCK_TIME.match(text):
            if night is None:
                raise ValueError(f"{where}: {text!r} is a clock time; add night: N, or give an ISO UTC instant "
                                 "like 2026-12-02T22:30:00Z")
            if self.first_night is None:
                raise ValueError(f"{where}: night {night} needs first_night: YYYY-MM-DD (the date of night 1's evening)")
            parts = [int(x) for x in text.split(":")]
            if parts[0] > 23 or parts[1] > 59 or (len(parts) > 2 and parts[2] > 59):
                raise ValueError(f"{where}: {text!r} is not a clock time; use HH:MM from 00:00 to 23:59")
            clock = time(parts[0], parts[1], parts[2] if len(parts) > 2 else 0)
            day = self.first_night + timedelta(days=night - 1 + (1 if clock.hour < 12 else 0))
            return datetime.combine(day, clock, tzinfo=ZoneInfo(self.timezone)).astimezone(UTC)
        if night is not None:
            raise ValueError(f"{where}: with night: {night} give a clock time like 22:30, not {text!r}")
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{where}: {text!r} is neither HH:MM nor an ISO instant like 2026-12-02T22:30:00Z") from None
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)

    def limit(self, quantity: str) -> Limit:
        return self.limits.get(quantity, DEFAULT_LIMITS[quantity])  # type: ignore[call-overload]

    def timeline(self) -> Timeline:
        return Timeline(self)


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class FaultEvent:
    kind: str
    at: datetime
    seconds: float

    @property
    def end(self) -> datetime:
        return self.at + timedelta(seconds=self.seconds)


class Timeline:
    """The scenario resolved to UTC instants: what holds at any simulated time."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        s = scenario
        self.periods = [(Span(s.instant(p.start, p.night), s.instant(p.to, p.night)), p) for p in s.periods]
        self.faults = sorted((FaultEvent(f.kind, s.instant(f.at, f.night), f.seconds) for f in s.faults),
                             key=lambda e: e.at)
        edges = {e for span, _ in self.periods for e in (span.start, span.end)}
        for f in self.faults:
            edges.add(f.at)
            if f.seconds:
                edges.add(f.end)
        self.transitions = sorted(edges)

    def weather(self, when: datetime) -> dict[str, float]:
        """Every quantity at `when`: the clear values overlaid by each period holding then (later wins)."""
        values: dict[str, float] = {q: float(getattr(self.scenario.clear, q)) for q in QUANTITIES}
        for span, period in self.periods:
            if span.start <= when < span.end:
                values.update({q: float(v) for q in QUANTITIES if (v := getattr(period, q)) is not None})
        return values

    def sky_cloud(self, when: datetime) -> float:
        """Cloud cover the sky model uses (0..1): rain is full cloud."""
        w = self.weather(when)
        return 1.0 if w["rain"] > 0 else w["clouds"] / 100.0

    def stale(self, when: datetime) -> bool:
        return any(f.kind == "stale" and f.at <= when < f.end for f in self.faults)

    def of_kind(self, kind: str) -> list[FaultEvent]:
        return [f for f in self.faults if f.kind == kind]

    def next_transition(self, after: datetime) -> datetime | None:
        i = bisect_right(self.transitions, after)
        return self.transitions[i] if i < len(self.transitions) else None


# ------------------------------------------------------------------ loading
class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps 22:30 as text (YAML 1.1 would read it as the sexagesimal number 1350)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def _lines(node: yaml.Node, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, str(key.value))] = key.start_mark.line + 1
            _lines(value, (*path, str(key.value)), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, str(i)), out)


def _one_line(exc: ValidationError, source: str, lines: dict[tuple[str, ...], int]) -> str:
    err = exc.errors()[0]
    loc = tuple("from" if part == "start" else str(part) for part in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown key; see {DOCS} for the keys"
    elif err["type"] == "missing":
        msg = "required key is missing"
    if re.match(r"^(periods|faults)\.\d+(\.\w+)?: ", msg):  # our own message names its key: point there
        dotted, msg = msg.split(": ", 1)
        loc = tuple(dotted.split("."))
    line = next((lines[loc[:cut]] for cut in range(len(loc), -1, -1) if loc[:cut] in lines), 0)
    where = f"{source}:{line}" if line else source
    return f"{where}: {'.'.join(loc) or 'scenario'}: {msg}"


def load_scenario(source: str | Path | dict[str, Any]) -> Scenario:
    """The scenario from a YAML file (path) or an already-parsed mapping; ConfigError (one line) if invalid."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(source, dict):
        data: Any = source
        name = "weather scenario"
    else:
        name = str(source)
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read weather scenario {name}: {exc.strerror}; fix weather_scenario") from None
        try:
            node = yaml.compose(text, Loader=_Loader)
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{name}{line}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the file") from None
        if node is not None:
            _lines(node, (), lines)
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: a weather scenario is a mapping of keys (periods, faults, ...); see {DOCS}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, name, lines)) from None
