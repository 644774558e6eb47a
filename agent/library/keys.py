"""The configuration key of a frame, and the library policy (thresholds, ages, tolerance).

A master can calibrate a light only if their keys agree; these types say which fields
take part for each frame type so grouping and matching share one definition.
"""

from __future__ import annotations

import enum
import functools
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class FrameType(enum.StrEnum):
    LIGHT = "light"
    DARK = "dark"
    FLAT = "flat"
    BIAS = "bias"
    DARKFLAT = "darkflat"


class SensorKind(enum.StrEnum):
    CMOS = "cmos"
    CCD = "ccd"


CALIBRATION_TYPES: tuple[FrameType, ...] = (
    FrameType.BIAS,
    FrameType.DARK,
    FrameType.DARKFLAT,
    FrameType.FLAT,
)

# Masters are built in this order so a flat finds the dark flat or bias it is calibrated with.
BUILD_ORDER: tuple[FrameType, ...] = (FrameType.BIAS, FrameType.DARK, FrameType.DARKFLAT, FrameType.FLAT)

# Key fields a sequence file may allow to differ, as named there.
LOOSER_FIELDS: frozenset[str] = frozenset({"temperature", "offset", "gain", "readout_mode", "exposure"})

# Columns of the exact part of a key, in the order used for grouping and indexing.
KEY_COLUMNS: tuple[str, ...] = (
    "frame_type",
    "camera",
    "sensor_kind",
    "width",
    "height",
    "binning",
    "gain",
    "offset",
    "readout_mode",
    "bit_depth",
    "filter",
    "exposure_key",
)


def exposure_key(frame_type: FrameType, exposure: float | None) -> float | None:
    """Exposure as it takes part in the key: darks and dark flats by exposure rounded to the
    nearest second (sub-second exposures to the millisecond); bias, flats and lights not at all
    (a flat's exposure only chooses its dark flat; a light's chooses its dark at match time)."""
    if frame_type not in (FrameType.DARK, FrameType.DARKFLAT) or exposure is None:
        return None
    return round_exposure(exposure)


def round_exposure(exposure: float) -> float:
    if exposure >= 1.0:
        return float(math.floor(exposure + 0.5))
    return round(exposure, 3)


@dataclass(frozen=True)
class ConfigKey:
    """Everything that must agree between a master and the frames it calibrates.

    `temperature` is the set-point (or sensor temperature when no set-point is recorded);
    it is matched within a tolerance, not exactly, so it is kept beside the exact fields.
    """

    frame_type: FrameType
    camera: str
    sensor_kind: SensorKind
    width: int
    height: int
    binning: str
    gain: float | None
    offset: float | None
    readout_mode: str | None
    bit_depth: int
    filter: str | None
    exposure_key: float | None
    temperature: float | None = None

    def exact(self) -> tuple[object, ...]:
        """The exactly-matched fields as plain values (SQL parameters, dictionary keys)."""
        return self._exact

    @functools.cached_property
    def _exact(self) -> tuple[object, ...]:
        return (
            self.frame_type.value,
            self.camera,
            self.sensor_kind.value,
            self.width,
            self.height,
            self.binning,
            self.gain,
            self.offset,
            self.readout_mode,
            self.bit_depth,
            self.filter,
            self.exposure_key,
        )

    def for_type(self, frame_type: FrameType, exposure: float | None = None) -> ConfigKey:
        """The key of a calibration frame that serves this configuration."""
        keeps_filter = frame_type in (FrameType.FLAT, FrameType.LIGHT)
        return replace(
            self,
            frame_type=frame_type,
            filter=self.filter if keeps_filter else None,
            exposure_key=exposure_key(frame_type, exposure),
        )

    def describe(self) -> str:
        parts = [
            self.frame_type.value,
            self.camera,
            self.sensor_kind.value,
            f"{self.width}x{self.height}",
            f"bin {self.binning}",
            f"gain {_num(self.gain)}",
            f"offset {_num(self.offset)}",
        ]
        if self.readout_mode:
            parts.append(f"readout {self.readout_mode}")
        parts.append(f"{self.bit_depth} bit")
        if self.filter:
            parts.append(f"filter {self.filter}")
        if self.exposure_key is not None:
            parts.append(f"{_num(self.exposure_key)} s")
        if self.temperature is not None:
            parts.append(f"{self.temperature:+.1f} °C")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {c: getattr(self, c) for c in KEY_COLUMNS}
        out["frame_type"] = self.frame_type.value
        out["sensor_kind"] = self.sensor_kind.value
        out["temperature"] = self.temperature
        return out

    @classmethod
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any], temperature: float | None = None) -> ConfigKey:
        """The key of a frames or masters row, or of the `key` a build job recorded."""
        def opt_float(name: str) -> float | None:
            v = row[name]
            return None if v is None else float(v)

        return cls(
            frame_type=FrameType(str(row["frame_type"])),
            camera=str(row["camera"]),
            sensor_kind=SensorKind(str(row["sensor_kind"])),
            width=int(row["width"]),
            height=int(row["height"]),
            binning=str(row["binning"]),
            gain=opt_float("gain"),
            offset=opt_float("offset"),
            readout_mode=None if row["readout_mode"] is None else str(row["readout_mode"]),
            bit_depth=int(row["bit_depth"]),
            filter=None if row["filter"] is None else str(row["filter"]),
            exposure_key=opt_float("exposure_key"),
            temperature=temperature,
        )


def _num(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v:g}"


def _default_min_frames() -> dict[FrameType, int]:
    return {FrameType.BIAS: 50, FrameType.DARK: 20, FrameType.DARKFLAT: 20, FrameType.FLAT: 20}


def _default_max_age() -> dict[FrameType, float]:
    return {FrameType.BIAS: 180.0, FrameType.DARK: 90.0, FrameType.DARKFLAT: 30.0, FrameType.FLAT: 14.0}


@dataclass(frozen=True)
class LibraryPolicy:
    """Calibration policy; the agent fills it from the sequence file, the CLI from options."""

    min_frames: Mapping[FrameType, int] = field(default_factory=_default_min_frames)
    max_age_days: Mapping[FrameType, float] = field(default_factory=_default_max_age)
    temperature_tolerance: float = 1.0
    looser_matches: frozenset[str] = frozenset()
    looser_temperature_within: float | None = None  # the limit of a looser temperature match, °C
    max_clipped_fraction: float = 0.01  # a calibrated light clipped more than this has failed
    # An expired master is used (with a warning) only when this allows it: the sequence file's
    # `allow_looser.expired_masters` and the CLI's `--allow-looser expired` set it (both default off).
    expired_masters: bool = True
    # A flat group with no dark flat of its exposure (sky flats change exposure as the sky fades; no
    # dark flats taken) is calibrated with the master bias only when this allows it; otherwise it
    # waits for its dark flats. The sequence file's `allow_looser.bias_for_darkflats` sets it.
    bias_for_flats: bool = True
    # How masters are integrated (the sequence file's `stacking:` section): rejection, low, high,
    # combine, memory_limit_mb; empty means the stacker's automatic choice.
    stacking: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        from agent.errors import ConfigError

        unknown = set(self.looser_matches) - LOOSER_FIELDS
        if unknown:
            raise ConfigError(
                f"unknown looser match {sorted(unknown)}; allowed: {', '.join(sorted(LOOSER_FIELDS))}"
            )
        if self.temperature_tolerance < 0:
            raise ConfigError("temperature tolerance must be >= 0 °C")
        if "temperature" in self.looser_matches and self.looser_temperature_within is None:
            raise ConfigError("a looser temperature match needs its limit (allow_looser.temperature_within)")
        if not 0 <= self.max_clipped_fraction <= 1:
            raise ConfigError("max clipped fraction must be between 0 and 1")
        for t in CALIBRATION_TYPES:
            if self.min_frames.get(t, 1) < 1:
                raise ConfigError(f"min frames for {t.value} must be at least 1")

    def min_for(self, frame_type: FrameType) -> int:
        return int(self.min_frames.get(frame_type, _default_min_frames()[frame_type]))

    def max_age_for(self, frame_type: FrameType) -> float:
        return float(self.max_age_days.get(frame_type, _default_max_age()[frame_type]))
