"""The sequence-file model: what a user may write, typed and checked key by key (pydantic)."""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agent.config.campaign import FlatCadence, flat_cadence
from agent.config.housekeeping import HousekeepingSettings
from agent.config.notify import NotificationSettings
from agent.config.safety import SafetySettings

SUPPORTED_VERSIONS = (1,)


# ---------------------------------------------------------------------------------------------
# Models


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt key silently ignored is a night lost."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _problem(message: str, at: str | None = None) -> PydanticCustomError:
    """A validation error with a plain message, optionally pointing at a sub-key of the model."""
    return PydanticCustomError("obsagent", message, {"at": at} if at else None)


class Site(_Strict):
    """Where the telescope stands. `horizon` is the lowest usable altitude anywhere (trees, roofs)."""

    name: str = "site"
    latitude: float = Field(ge=-90, le=90, description="degrees, north positive")
    longitude: float = Field(ge=-180, le=180, description="degrees, east positive")
    elevation: float = Field(default=0.0, ge=-500, le=9000, description="metres above sea level")
    timezone: str = "UTC"
    horizon: float = Field(default=0.0, ge=0, lt=90, description="degrees")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise _problem(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class IndiDevices(_Strict):
    """INDI device names as the server lists them. Only the camera is always needed."""

    camera: str
    wheel: str | None = None
    flat_panel: str | None = Field(default=None, description="the light (a flip-flat: light and cap)")
    dust_cap: str | None = Field(default=None, description="a dust cover on its own device (light-only panel)")
    gps: str | None = Field(default=None, description="a GPS device whose time is preferred to the system clock")
    mount: str | None = None


class IndiSettings(_Strict):
    address: str = "localhost:7624"
    devices: IndiDevices

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:  # no URL: INDI is no web
            raise _problem(f"{value!r} is not HOST:PORT; write e.g. 'localhost:7624'")
        return value

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


class CameraSettings(_Strict):
    """Settings that define a frame's configuration key (see the design brief)."""

    sensor: Literal["cmos", "ccd"]
    set_point: float | None = Field(default=None, ge=-60, le=40, description="cooler target, Celsius")
    set_point_tolerance: float = Field(default=0.5, gt=0, le=10, description="Celsius")
    allow_warmer_set_point: bool = Field(
        default=False, description="when the cooler cannot reach set_point, run the night at the nearest it reaches"
    )
    gain: int | None = Field(default=None, ge=0)
    offset: int | None = Field(default=None, ge=0)
    binning: int = Field(default=1, ge=1, le=8)
    readout_mode: str | None = None
    bit_depth: Literal[8, 10, 12, 14, 16] | None = None

    @field_validator("readout_mode", mode="before")
    @classmethod
    def _mode_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Exposure(_Strict):
    """`count` frames of `exposure` seconds through `filter` over the whole campaign (all nights);
    `per_night` caps one night's share so a target's time is spread over several nights."""

    filter: str
    exposure: float = Field(gt=0, le=3600, description="seconds")
    count: int = Field(ge=1, le=10000, description="the campaign total: good lights over all nights")
    per_night: int | None = Field(default=None, ge=1, le=10000, description="at most this many lights a night")
    readout_mode: str | None = Field(default=None, description="overrides the target's and the camera's")

    @field_validator("readout_mode", mode="before")
    @classmethod
    def _mode_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _cap_below_total(self) -> Exposure:
        if self.per_night is not None and self.per_night > self.count:
            raise _problem(
                f"per_night ({self.per_night}) exceeds count ({self.count}), the campaign total, so it would "
                "never cap a night; lower it or remove it",
                at="per_night",
            )
        return self


_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class TimeWindow(_Strict):
    """Local clock times (site time zone) between which a target may be imaged; may span midnight."""

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise _problem(f"{value!r} is not a clock time; write HH:MM, e.g. '22:30'")
        return value

    @staticmethod
    def minutes(value: str) -> int:
        hours, minutes = value.split(":")
        return int(hours) * 60 + int(minutes)

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise _problem("start and end are equal; the window would be empty", at="end")
        return self


def _angle(value: Any, unit: str) -> Any:
    """Degrees as a number, or sexagesimal text ('05h35m17s', '05:35:17', '-05d23m28s')."""
    if isinstance(value, bool) or not isinstance(value, str):
        return value
    from astropy import units as u
    from astropy.coordinates import Angle

    text = value.strip()
    sexagesimal = any(mark in text for mark in ":hdms°'\"")
    try:
        if not sexagesimal:
            return float(text)
        return float(Angle(text, unit=u.hourangle if unit == "hourangle" else u.deg).deg)
    except (ValueError, TypeError):
        raise _problem(f"cannot read {value!r} as an angle") from None


def not_in_catalogue(name: str) -> str:
    return f"{name!r} is not in the built-in catalogue (Messier and bright NGC/IC objects); add ra and dec"


class Target(_Strict):
    """What to image. Without `ra`/`dec` the name must be in the built-in catalogue."""

    name: str = Field(min_length=1)
    ra: float | None = Field(default=None, ge=0, lt=360, description="degrees (J2000) or 'HHhMMmSSs'")
    dec: float | None = Field(default=None, ge=-90, le=90, description="degrees (J2000) or '+DDdMMmSSs'")
    exposures: list[Exposure] = Field(min_length=1)
    priority: int = Field(default=1, ge=1, le=100, description="1 is scheduled first")
    min_altitude: float = Field(default=30.0, ge=0, lt=90)
    min_moon_separation: float | None = Field(default=None, ge=0, le=180)
    window: TimeWindow | None = None
    readout_mode: str | None = Field(default=None, description="this target's lights (and their calibration)")
    _catalogue_name: str | None = PrivateAttr(default=None)

    @field_validator("readout_mode", mode="before")
    @classmethod
    def _mode_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def readout_mode_for(self, exposure: Exposure, camera_mode: str | None) -> str | None:
        """The block's readout mode: the exposure's, else the target's, else the camera's."""
        return exposure.readout_mode or self.readout_mode or camera_mode

    @field_validator("ra", mode="before")
    @classmethod
    def _ra(cls, value: Any) -> Any:
        return _angle(value, "hourangle")

    @field_validator("dec", mode="before")
    @classmethod
    def _dec(cls, value: Any) -> Any:
        return _angle(value, "deg")

    @model_validator(mode="after")
    def _coordinates(self) -> Target:
        if (self.ra is None) != (self.dec is None):
            missing = "dec" if self.dec is None else "ra"
            raise _problem(f"give both ra and dec, or neither (to look the name up); {missing} is missing")
        if self.ra is None:
            from agent.sky.catalogue import lookup

            found = lookup(self.name)
            if found is None:
                raise _problem(not_in_catalogue(self.name), at="name")
            object.__setattr__(self, "ra", found.ra_deg)
            object.__setattr__(self, "dec", found.dec_deg)
            self._catalogue_name = found.designation
        return self

    @property
    def catalogue_name(self) -> str | None:
        """Designation the coordinates were taken from, or None when the file gave them."""
        return self._catalogue_name

    @property
    def ra_deg(self) -> float:
        assert self.ra is not None
        return self.ra

    @property
    def dec_deg(self) -> float:
        assert self.dec is not None
        return self.dec


class SunBand(_Strict):
    """Sun altitudes (degrees) between which the sky is a usable flat field."""

    upper: float = Field(default=-2.0, ge=-18, le=5)
    lower: float = Field(default=-10.0, ge=-18, le=5)

    @model_validator(mode="after")
    def _ordered(self) -> SunBand:
        if self.upper <= self.lower:
            raise _problem(
                f"Sun band inverted: upper ({self.upper:g}) must be above lower ({self.lower:g}); "
                "e.g. upper: -2, lower: -10",
                at="upper",
            )
        return self


class FlatPolicy(_Strict):
    source: Literal["panel", "sky-dusk", "sky-dawn", "sky-both"] = "panel"
    cadence: FlatCadence = Field(default="session", description="session, completion, or every N sessions")
    filter_cadence: dict[str, FlatCadence] = Field(default_factory=dict, description="a filter's own cadence")
    adu_target: float = Field(default=0.45, gt=0, lt=1, description="fraction of full scale")
    adu_tolerance: float = Field(default=0.05, gt=0, lt=1, description="fraction of full scale, +/-")
    sun_band: SunBand = SunBand()
    exposure_min: float = Field(
        default=0.1, gt=0, description="seconds; shorter flats show shutter/readout patterns"
    )
    exposure_max: float = Field(default=30.0, gt=0, description="seconds")
    dark_flats: bool = True

    @field_validator("cadence", mode="before")
    @classmethod
    def _one_cadence(cls, value: Any) -> Any:
        return flat_cadence(value)

    @field_validator("filter_cadence", mode="before")
    @classmethod
    def _filter_cadences(cls, value: Any) -> Any:
        return {k: flat_cadence(v) for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _sane(self) -> FlatPolicy:
        if self.adu_target + self.adu_tolerance >= 1:
            raise _problem(
                "adu_target + adu_tolerance reaches saturation; lower one of them", at="adu_target"
            )
        if self.adu_target - self.adu_tolerance <= 0:
            raise _problem("adu_tolerance is larger than adu_target; lower it", at="adu_tolerance")
        if self.exposure_min >= self.exposure_max:
            raise _problem("exposure_min must be below exposure_max", at="exposure_min")
        return self

    @property
    def sky_at_dusk(self) -> bool:
        return self.source in ("sky-dusk", "sky-both")

    @property
    def sky_at_dawn(self) -> bool:
        return self.source in ("sky-dawn", "sky-both")


class DarkPolicy(_Strict):
    in_gaps: bool = True
    # The camera stays dark behind its closed cap in daylight: the day before a night is used for
    # that night's missing darks, bias and dark flats (`serve` starts the night in the morning).
    by_day: bool = False
    min_gap_minutes: float = Field(default=20.0, gt=0, le=720)


class BiasPolicy(_Strict):
    count: int = Field(default=50, ge=0, le=1000)


class MasterRule(_Strict):
    """A master is built from at least `min_frames` and is stale after `max_age_days`."""

    min_frames: int = Field(ge=1, le=1000)
    max_age_days: float = Field(gt=0)


class MasterRules(_Strict):
    bias: MasterRule = MasterRule(min_frames=50, max_age_days=180)
    dark: MasterRule = MasterRule(min_frames=20, max_age_days=90)
    darkflat: MasterRule = MasterRule(min_frames=20, max_age_days=30)
    flat: MasterRule = MasterRule(min_frames=20, max_age_days=14)


class LooserMatches(_Strict):
    """Matches beyond the exact configuration key that the user accepts (each one is warned about)."""

    temperature_within: float | None = Field(
        default=None, gt=0, le=20, description="Celsius; a master this far from the set-point may be used"
    )
    scaled_darks: bool = Field(default=False, description="scale a dark of another exposure (CMOS too)")
    expired_masters: bool = Field(default=False, description="use a master older than its max age")
    bias_for_darkflats: bool = Field(
        default=True,
        description="calibrate flats with the master bias where no dark flat matches (sky flats); "
        "false: such flats wait for dark flats",
    )


class CalibrationPolicy(_Strict):
    flats: FlatPolicy = FlatPolicy()
    darks: DarkPolicy = DarkPolicy()
    bias: BiasPolicy = BiasPolicy()
    masters: MasterRules = MasterRules()
    temperature_tolerance: float = Field(default=1.0, gt=0, le=10, description="Celsius")
    max_clipped_percent: float = Field(
        default=1.0, ge=0, le=100, description="a calibrated light with more pixels clipped has failed"
    )
    allow_looser: LooserMatches = LooserMatches()

    @model_validator(mode="after")
    def _looser_is_looser(self) -> CalibrationPolicy:
        within = self.allow_looser.temperature_within
        if within is not None and within <= self.temperature_tolerance:
            raise _problem(
                f"allow_looser.temperature_within ({within:g}) must exceed temperature_tolerance "
                f"({self.temperature_tolerance:g})",
                at="allow_looser.temperature_within",
            )
        return self


class StackingDefaults(_Strict):
    rejection: Literal[
        "auto", "none", "percentile", "sigma", "mad", "avgsigma", "winsorized", "linearfit", "gesd"
    ] = "auto"
    low: float | None = Field(default=None, gt=0, description="lower threshold (default: the method's own)")
    high: float | None = Field(default=None, gt=0, description="upper threshold (default: the method's own)")
    combine: Literal["mean", "median"] = "mean"
    memory_limit_mb: int = Field(default=1024, ge=64)


# The uploaders agent/sync has (sync/targets.py `parse_target`); a URL of another kind cannot work.
SYNC_SCHEMES = ("file", "sftp", "s3")


class SyncTarget(_Strict):
    """Where finished masters are uploaded. Credentials travel the uploader's own way (an SSH key
    in the sftp URL, an AWS profile for s3), never in the file."""

    url: str
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme in ("http", "https"):
            raise _problem(
                f"{value!r}: uploads over http(s) are not supported; use file://, sftp://user@host/path "
                "or s3://bucket/prefix"
            )
        if parsed.scheme not in SYNC_SCHEMES:
            raise _problem(f"{value!r} needs a scheme: file, sftp or s3")
        if parsed.scheme != "file" and not parsed.netloc:
            raise _problem(f"{value!r} has no host")
        return value

    @field_validator("token_env")
    @classmethod
    def _no_token(cls, value: str | None) -> str | None:
        # No uploader reads a token: accepting the key would leave the credential silently unused.
        if value is not None:
            raise _problem(
                "token_env is not supported: sftp takes its key in the URL (?key=~/.ssh/id_ed25519), "
                "s3 its credentials from an AWS profile (?profile=NAME) or the AWS_* variables; remove it"
            )
        return value


class ScheduleSettings(_Strict):
    """How lights are fitted into the night."""

    max_sun_altitude: float = Field(default=-18.0, ge=-18, le=0, description="lights only with the Sun below")
    frame_overhead: float = Field(default=5.0, ge=0, description="seconds of readout/download per frame")
    target_change: float = Field(default=120.0, ge=0, description="seconds to slew, settle and centre")
    cooldown_lead: float = Field(default=1800.0, ge=0, le=14400, description="seconds of cooling before dusk")


class Sequence(_Strict):
    """A whole sequence file."""

    version: Literal[1]
    site: Site
    indi: IndiSettings
    camera: CameraSettings
    filters: list[str] = Field(min_length=1, description="names in wheel order, slot 1 first")
    targets: list[Target] = Field(default_factory=list)
    calibration: CalibrationPolicy = CalibrationPolicy()
    stacking: StackingDefaults = StackingDefaults()
    schedule: ScheduleSettings = ScheduleSettings()
    sync: SyncTarget | None = None
    housekeeping: HousekeepingSettings = HousekeepingSettings()
    safety: SafetySettings = SafetySettings()
    notifications: NotificationSettings = NotificationSettings()

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if value not in SUPPORTED_VERSIONS:
            raise _problem(f"unsupported version {value!r}; this obsagent reads version: 1")
        return value

    @field_validator("filters")
    @classmethod
    def _filter_names(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if not name.strip():
                raise _problem("filter names must not be empty", at=str(index))
            if name in value[:index]:
                raise _problem(f"filter {name!r} is listed twice", at=str(index))
        return value

    def filter_slot(self, name: str) -> int:
        """INDI filter slot (1-based) of a filter name."""
        return self.filters.index(name) + 1
