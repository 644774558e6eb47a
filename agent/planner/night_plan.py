"""What a night plan is: twilights, sky-flat windows, visibility, the light blocks, the gaps."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import numpy as np


@dataclass(frozen=True)
class Interval:
    start: dt.datetime
    end: dt.datetime

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class SunEvent:
    """A crossing of a Sun altitude; `time` is None when it does not happen tonight, with `reason`."""

    name: str
    altitude: float
    time: dt.datetime | None
    reason: str | None = None


@dataclass(frozen=True)
class SkyFlatWindow:
    """When the Sun is within the sky-flat band, at dusk or at dawn."""

    period: Literal["dusk", "dawn"]
    start: dt.datetime | None
    end: dt.datetime | None
    reason: str | None = None


@dataclass(frozen=True)
class LightConfig:
    """The configuration key of the lights one exposure entry produces (see the design brief)."""

    camera: str
    sensor: str
    gain: int | None
    offset: int | None
    binning: int
    readout_mode: str | None
    bit_depth: int | None
    set_point: float | None
    filter: str
    exposure: float

    def settings(self) -> str:
        """Camera settings in words, e.g. 'gain 100 offset 50 bin1 -10C'."""
        parts = []
        if self.gain is not None:
            parts.append(f"gain {self.gain}")
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        parts.append(f"bin{self.binning}")
        if self.readout_mode is not None:
            parts.append(f"mode {self.readout_mode}")
        parts.append(f"{self.set_point:g}C" if self.set_point is not None else "uncooled")
        return " ".join(parts)

    def dark_label(self) -> str:
        return f"darks: {self.exposure:g}s {self.settings()}"


@dataclass(frozen=True)
class Visibility:
    """When a target satisfies its constraints in darkness tonight; `reason` says why never."""

    target: str
    intervals: tuple[Interval, ...]
    reason: str | None = None


@dataclass(frozen=True)
class Block:
    """`count` lights of `exposure` s through `filter`; `start` includes `setup` s of slewing/centring."""

    target: str
    filter: str
    exposure: float
    count: int
    start: dt.datetime
    end: dt.datetime
    setup: float
    config: LightConfig


@dataclass(frozen=True)
class Shortfall:
    """Frames of an exposure entry that did not fit into tonight's schedule."""

    target: str
    filter: str
    exposure: float
    missing: int
    requested: int


@dataclass(frozen=True)
class Gap:
    """Idle time in the night long enough for calibration frames; `items` say which."""

    start: dt.datetime
    end: dt.datetime
    label: str
    items: tuple[str, ...]

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start


class EntryProgress(Protocol):
    """What the planner needs of an exposure entry's campaign; the library answers it
    (`agent.library.queries.campaign.TargetProgress`), the planner never asks the library itself."""

    @property
    def target(self) -> str: ...
    @property
    def filter(self) -> str: ...
    @property
    def exposure(self) -> float: ...
    @property
    def readout_mode(self) -> str | None: ...
    @property
    def done(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def remaining_tonight(self) -> int: ...


NeedsFn = Callable[[Seq[LightConfig], dt.datetime, dt.datetime], Seq[str]]
"""Calibration work wanted in a gap: called once per gap, in time order, with tonight's light configurations."""


@dataclass(frozen=True)
class Tracks:
    """Altitude curves for plots: UTC unix seconds, Sun altitude, and each target's altitude."""

    sun_times: np.ndarray
    sun_altitude: np.ndarray
    target_times: np.ndarray
    target_altitude: dict[str, np.ndarray]


@dataclass
class NightPlan:
    date: dt.date
    site: str
    timezone: str
    start: dt.datetime
    end: dt.datetime
    sun_lowest: tuple[dt.datetime, float]
    events: dict[str, SunEvent]
    dark: Interval | None
    dark_reason: str | None
    sky_flat_windows: tuple[SkyFlatWindow, SkyFlatWindow]
    visibility: list[Visibility]
    blocks: list[Block]
    shortfalls: list[Shortfall]
    gaps: list[Gap]
    notes: list[str]
    tracks: Tracks | None = field(default=None, repr=False)

    def begins(self, dusk_flats: bool) -> dt.datetime:
        """The first thing the night does: the dusk sky flats when they are taken, else sunset."""
        dusk = self.sky_flat_windows[0]
        if dusk_flats and dusk.start is not None:
            return dusk.start
        return self.sunset or self.start

    # Named accessors for the events, so callers need not know the dictionary keys.
    @property
    def sunset(self) -> dt.datetime | None:
        return self.events["sunset"].time

    @property
    def sunrise(self) -> dt.datetime | None:
        return self.events["sunrise"].time

    @property
    def civil_dusk(self) -> dt.datetime | None:
        return self.events["civil_dusk"].time

    @property
    def civil_dawn(self) -> dt.datetime | None:
        return self.events["civil_dawn"].time

    @property
    def nautical_dusk(self) -> dt.datetime | None:
        return self.events["nautical_dusk"].time

    @property
    def nautical_dawn(self) -> dt.datetime | None:
        return self.events["nautical_dawn"].time

    @property
    def astronomical_dusk(self) -> dt.datetime | None:
        return self.events["astronomical_dusk"].time

    @property
    def astronomical_dawn(self) -> dt.datetime | None:
        return self.events["astronomical_dawn"].time

    @property
    def dusk_flat_window(self) -> SkyFlatWindow:
        return self.sky_flat_windows[0]

    @property
    def dawn_flat_window(self) -> SkyFlatWindow:
        return self.sky_flat_windows[1]

    @property
    def light_configs(self) -> list[LightConfig]:
        """Distinct configurations of the lights scheduled tonight, in schedule order."""
        return list(dict.fromkeys(block.config for block in self.blocks))

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(ZoneInfo(self.timezone))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--json`: times as ISO 8601 in UTC, with the local time beside each."""

        def when(moment: dt.datetime | None) -> dict[str, str] | None:
            if moment is None:
                return None
            return {"utc": moment.isoformat(), "local": self.local(moment).isoformat()}

        return {
            "date": self.date.isoformat(),
            "site": self.site,
            "timezone": self.timezone,
            "start": when(self.start),
            "end": when(self.end),
            "sun_lowest": {"time": when(self.sun_lowest[0]), "altitude": round(self.sun_lowest[1], 3)},
            "events": {
                name: {"altitude": e.altitude, "time": when(e.time), "reason": e.reason}
                for name, e in self.events.items()
            },
            "dark": None
            if self.dark is None
            else {"start": when(self.dark.start), "end": when(self.dark.end)},
            "dark_reason": self.dark_reason,
            "sky_flat_windows": [
                {"period": w.period, "start": when(w.start), "end": when(w.end), "reason": w.reason}
                for w in self.sky_flat_windows
            ],
            "visibility": [
                {
                    "target": v.target,
                    "intervals": [{"start": when(i.start), "end": when(i.end)} for i in v.intervals],
                    "reason": v.reason,
                }
                for v in self.visibility
            ],
            "blocks": [
                {
                    "target": b.target,
                    "filter": b.filter,
                    "exposure": b.exposure,
                    "count": b.count,
                    "start": when(b.start),
                    "end": when(b.end),
                    "setup": b.setup,
                }
                for b in self.blocks
            ],
            "shortfalls": [
                {
                    "target": s.target,
                    "filter": s.filter,
                    "exposure": s.exposure,
                    "missing": s.missing,
                    "requested": s.requested,
                }
                for s in self.shortfalls
            ],
            "gaps": [
                {"start": when(g.start), "end": when(g.end), "label": g.label, "items": list(g.items)}
                for g in self.gaps
            ],
            "notes": list(self.notes),
        }
