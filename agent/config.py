"""Sequence files: the YAML a user writes to describe a session, validated into typed models.

Every problem in a file is reported at once, each as `FILE:LINE: key.path: message`, because a
user fixing a file at the mount should not have to run `obsagent validate` once per typo.
Line numbers come from the YAML node tree, composed alongside the plain data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agent.errors import ConfigError

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
    flat_panel: str | None = None
    mount: str | None = None


class IndiSettings(_Strict):
    address: str = "localhost:7624"
    devices: IndiDevices

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
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
    """`count` frames of `exposure` seconds through `filter`."""

    filter: str
    exposure: float = Field(gt=0, le=3600, description="seconds")
    count: int = Field(ge=1, le=10000)


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


def _not_in_catalogue(name: str) -> str:
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
    _catalogue_name: str | None = PrivateAttr(default=None)

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
            from agent.sequencer.planner_catalogue import lookup

            found = lookup(self.name)
            if found is None:
                raise _problem(_not_in_catalogue(self.name), at="name")
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
    adu_target: float = Field(default=0.45, gt=0, lt=1, description="fraction of full scale")
    adu_tolerance: float = Field(default=0.05, gt=0, lt=1, description="fraction of full scale, +/-")
    sun_band: SunBand = SunBand()
    exposure_min: float = Field(
        default=0.1, gt=0, description="seconds; shorter flats show shutter/readout patterns"
    )
    exposure_max: float = Field(default=30.0, gt=0, description="seconds")
    dark_flats: bool = True

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
        default=False, description="calibrate flats with the bias if no dark flat"
    )


class CalibrationPolicy(_Strict):
    flats: FlatPolicy = FlatPolicy()
    darks: DarkPolicy = DarkPolicy()
    bias: BiasPolicy = BiasPolicy()
    masters: MasterRules = MasterRules()
    temperature_tolerance: float = Field(default=1.0, gt=0, le=10, description="Celsius")
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


class SyncTarget(_Strict):
    """Where finished masters are uploaded; the credential is read from an environment variable."""

    url: str
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https", "file", "sftp", "s3"):
            raise _problem(f"{value!r} needs a scheme: http, https, file, sftp or s3")
        if parsed.scheme != "file" and not parsed.netloc:
            raise _problem(f"{value!r} has no host")
        return value


class ScheduleSettings(_Strict):
    """How lights are fitted into the night."""

    max_sun_altitude: float = Field(default=-18.0, ge=-18, le=0, description="lights only with the Sun below")
    frame_overhead: float = Field(default=5.0, ge=0, description="seconds of readout/download per frame")
    target_change: float = Field(default=120.0, ge=0, description="seconds to slew, settle and centre")


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


# ---------------------------------------------------------------------------------------------
# Loading with line numbers


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a sequence file."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class SequenceError(ConfigError):
    """A sequence file is invalid; `problems` lists every problem found."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems
        count = len(problems)
        head = f"{filename}: {count} problem{'s' if count != 1 else ''}; fix the sequence file and run `obsagent validate {filename}`"
        super().__init__("\n".join([head, *(f"  {p}" for p in problems)]))


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 sexagesimal numbers: '22:30' and '05:35:17' stay text."""


_Loader.yaml_implicit_resolvers = {
    key: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)

_Path = tuple[str | int, ...]


def _index_lines(
    node: yaml.Node, path: _Path, lines: dict[_Path, int], duplicates: list[tuple[_Path, int]]
) -> None:
    """Map every key path to the 1-based line where it is written; note duplicated keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                duplicates.append((child, key_node.start_mark.line + 1))
                continue
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, lines, duplicates)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, duplicates)


def _line_of(path: _Path, lines: dict[_Path, int]) -> int:
    """Line of the deepest written part of `path` (a missing key points at its parent)."""
    for cut in range(len(path), -1, -1):
        prefix = path[:cut]
        if prefix in lines:
            return lines[prefix]
    return 1


def _dotted(path: _Path) -> str:
    return ".".join(str(part) for part in path)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (check the spelling against docs/sequence-file.md)"
    if kind == "literal_error" and error["loc"] and error["loc"][-1] == "version":
        return "unsupported version; this obsagent reads version: 1"
    message = str(error["msg"])
    if kind == "obsagent":
        return message
    return message[0].lower() + message[1:] if message else message


def _error_path(error: Any) -> _Path:
    """Location of a pydantic error, without union/tag noise, extended by our own `at` hint."""
    loc: list[str | int] = [part for part in error["loc"] if not (isinstance(part, str) and "[" in part)]
    at = (error.get("ctx") or {}).get("at")
    if at:
        loc.extend(int(part) if part.isdigit() else part for part in str(at).split("."))
    return tuple(loc)


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _cross_checks(data: dict[str, Any]) -> list[tuple[_Path, str]]:
    """Checks across sections, run on the raw data so they are reported even beside other errors."""
    found: list[tuple[_Path, str]] = []
    filters = data.get("filters")
    names = [f for f in filters if isinstance(f, str)] if isinstance(filters, list) else None
    devices = _section(_section(data, "indi"), "devices")
    if names is not None and len(names) > 1 and devices and not devices.get("wheel"):
        found.append(
            (("indi", "devices", "wheel"), f"{len(names)} filters are listed but no filter wheel is named")
        )
    targets = data.get("targets")
    if isinstance(targets, list):
        seen_names: dict[str, int] = {}
        for t_index, target in enumerate(targets):
            if not isinstance(target, dict):
                continue
            tname = target.get("name")
            if isinstance(tname, str) and "ra" not in target and "dec" not in target:
                from agent.sequencer.planner_catalogue import lookup

                if lookup(tname) is None:
                    found.append((("targets", t_index, "name"), _not_in_catalogue(tname)))
            if isinstance(tname, str):
                if tname in seen_names:
                    found.append(
                        (
                            ("targets", t_index, "name"),
                            f"target {tname!r} is listed twice (also targets.{seen_names[tname]})",
                        )
                    )
                seen_names.setdefault(tname, t_index)
            exposures = target.get("exposures")
            if not isinstance(exposures, list):
                continue
            for e_index, exposure in enumerate(exposures):
                if (
                    names is not None
                    and isinstance(exposure, dict)
                    and isinstance(exposure.get("filter"), str)
                    and exposure["filter"] not in names
                ):
                    found.append(
                        (
                            ("targets", t_index, "exposures", e_index, "filter"),
                            f"filter {exposure['filter']!r} is not in the wheel (filters: {', '.join(names)})",
                        )
                    )
    flats = _section(_section(data, "calibration"), "flats")
    if flats.get("source", "panel") == "panel" and devices and not devices.get("flat_panel"):
        found.append(
            (
                ("calibration", "flats", "source"),
                "flats come from the panel but indi.devices.flat_panel is not set; name the panel or use sky flats",
            )
        )
    return found


def parse_sequence(text: str, filename: str = "<sequence>") -> Sequence:
    """Validate sequence-file text; raise SequenceError listing every problem with file:line."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = str(exc.problem or "syntax error")
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            what += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        elif exc.context:
            what += f" ({exc.context})"
        raise SequenceError(filename, [Problem(filename, line, "", f"not valid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise SequenceError(filename, [Problem(filename, 1, "", f"not valid YAML: {exc}")]) from None
    if root is None:
        raise SequenceError(
            filename, [Problem(filename, 1, "", "the file is empty; start from examples/night.yaml")]
        )
    if not isinstance(data, dict):
        raise SequenceError(
            filename,
            [
                Problem(
                    filename, 1, "", "the file must be a mapping of sections (version:, site:, indi:, ...)"
                )
            ],
        )

    lines: dict[_Path, int] = {}
    duplicates: list[tuple[_Path, int]] = []
    _index_lines(root, (), lines, duplicates)
    found: list[tuple[int, str, str]] = []
    for path, line in duplicates:
        found.append((line, _dotted(path), "key is given twice; keep one"))
    sequence: Sequence | None = None
    try:
        sequence = Sequence.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            path = _error_path(error)
            found.append((_line_of(path, lines), _dotted(path), _message(error)))
    for path, message in _cross_checks(data):
        found.append((_line_of(path, lines), _dotted(path), message))
    if found:
        unique = sorted(set(found), key=lambda item: (item[0], item[1], item[2]))
        raise SequenceError(
            filename, [Problem(filename, line, path, message) for line, path, message in unique]
        )
    assert sequence is not None
    return sequence


def load_sequence(path: str | Path) -> Sequence:
    """Read and validate a sequence file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such sequence file; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{file}: cannot read the sequence file ({exc}); check its permissions and encoding"
        ) from None
    return parse_sequence(text, str(file))
