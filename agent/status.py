"""The night's live status as one JSON file, `<data>/status.json`, for the dashboard and scripts.

The night writes it (atomically: temporary name, fsync, rename) whenever something a person would
look at changes; readers never see a half-written file and never block the night. Only the standard
library is imported here so a reader (the web process) stays small.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.umask import new_file_mode

STATUS_FILE = "status.json"
STATUS_VERSION = 1
# Samples kept for the night's plots: one a minute for 16 hours.
MAX_SAMPLES = 960
_SAMPLES = ("cooler", "weather")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class CoolerSample:
    time: str  # ISO 8601, UTC
    temperature: float | None  # sensor, °C
    set_point: float | None = None
    power: float | None = None  # percent


@dataclass
class WeatherSample:
    time: str
    safe: bool
    summary: str = ""  # e.g. "clouds -18 °C sky, rain no, wind 3 m/s"


@dataclass
class NightStatus:
    """What the night is doing now, and what it did tonight that is worth a plot."""

    night: str | None = None  # the evening's local date, YYYY-MM-DD
    state: str = "idle"  # the state machine's state
    activity: str = ""  # one line a person reads: "imaging M 42, L, 12 of 40"
    detail: dict[str, Any] = field(default_factory=dict)  # target, filter, frame_type, remaining ...
    updated: str = field(default_factory=_now)
    paused: bool = False
    plan: dict[str, Any] | None = None  # NightPlan.to_dict() of tonight
    last_frame: dict[str, Any] | None = None  # {"path", "frame_type", "captured", "exposure", "filter", "target"}
    cooler: list[CoolerSample] = field(default_factory=list)
    weather: list[WeatherSample] = field(default_factory=list)
    safe: bool | None = None
    warnings: list[str] = field(default_factory=list)
    version: int = STATUS_VERSION

    def touch(self) -> None:
        self.updated = _now()

    def record_cooler(
        self, temperature: float | None, set_point: float | None = None, power: float | None = None,
        when: dt.datetime | None = None,
    ) -> None:
        self.cooler.append(CoolerSample(_iso(when), temperature, set_point, power))
        del self.cooler[:-MAX_SAMPLES]

    def record_weather(self, safe: bool, summary: str = "", when: dt.datetime | None = None) -> None:
        self.safe = safe
        self.weather.append(WeatherSample(_iso(when), safe, summary))
        del self.weather[:-MAX_SAMPLES]

    def record_frame(self, path: str | os.PathLike[str], frame_type: str, **info: Any) -> None:
        self.last_frame = {"path": str(path), "frame_type": frame_type, "captured": _now(), **info}

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def to_dict(self) -> dict[str, Any]:
        """A plain copy (what `dataclasses.asdict` gives, without walking 2,000 samples by reflection)."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name not in _SAMPLES}
        out["cooler"] = [dict(vars(s)) for s in self.cooler]
        out["weather"] = [dict(vars(s)) for s in self.weather]
        return {f.name: out[f.name] for f in fields(self)}  # in declaration order, as asdict

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> NightStatus:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["cooler"] = [_sample(CoolerSample, s) for s in raw.get("cooler") or [] if isinstance(s, dict)]
        values["weather"] = [_sample(WeatherSample, s) for s in raw.get("weather") or [] if isinstance(s, dict)]
        return cls(**values)


def _iso(when: dt.datetime | None) -> str:
    return (when or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")


def _sample(kind: type[Any], raw: Mapping[str, Any]) -> Any:
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in raw.items() if k in names})


def status_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / STATUS_FILE


def write_status(data_dir: str | os.PathLike[str], status: NightStatus) -> Path:
    """Replace the status file atomically; stamps `updated`."""
    status.touch()
    path = status_path(data_dir)
    atomic_write_text(path, json.dumps(status.to_dict(), indent=1, default=str))
    return path


def read_status(data_dir: str | os.PathLike[str]) -> NightStatus | None:
    """The last status written, or None when no night has written one (or it cannot be read)."""
    try:
        raw = json.loads(status_path(data_dir).read_text())
        if not isinstance(raw, dict):
            return None
        return NightStatus.from_dict(raw)
    except (OSError, ValueError, TypeError):
        return None


def status_stamp(data_dir: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(mtime in ns, size) of the status file: a cheap test whether it changed."""
    try:
        st = status_path(data_dir).stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a temporary file beside `path`, fsync, rename over it (the contract of
    `agent.fitsfile.atomic_output`, without importing numpy and astropy into readers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
