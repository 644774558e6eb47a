"""The `safety:` section: which weather devices decide, how old a reading may be, how long to wait
before opening again, and the cloud check on our own lights."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError


class CloudCheckSettings(BaseModel):
    """Clouds seen in the lights themselves: fewer stars than the night's clear lights of the same
    target, filter and exposure, or a much brighter sky."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    min_star_fraction: float = Field(
        default=0.3, gt=0, lt=1, description="a light with fewer stars than this fraction of the reference is cloudy"
    )
    max_sky_ratio: float = Field(
        default=3.0, gt=1, le=100, description="a sky above the pedestal this many times the reference's is cloudy"
    )
    min_stars: int = Field(
        default=8, ge=1, le=10000, description="stars a light needs before it may become the reference"
    )


class SafetySettings(BaseModel):
    """Unsafe (or stale) weather closes up at once; the sky is used again after `resume_after`
    seconds of continuous safe readings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weather: list[str] = Field(
        default_factory=list, description="INDI weather devices or safety monitors (device names); none: always safe"
    )
    max_age: float = Field(
        default=300.0, gt=0, le=86400, description="seconds: an older reading counts as unsafe"
    )
    unsafe_on: Literal["alert", "warning"] = Field(
        default="alert", description="alert: outside the device's ok range; warning: its warning zone too"
    )
    resume_after: float = Field(
        default=600.0, ge=0, le=86400, description="seconds of continuous safe readings before reopening"
    )
    cloud_check: CloudCheckSettings = CloudCheckSettings()

    @field_validator("weather")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if not name.strip():
                raise PydanticCustomError(
                    "obsagent", "an empty device name; give the INDI device name", {"at": str(index)}
                )
            if name in value[:index]:
                raise PydanticCustomError(
                    "obsagent", f"weather device {name!r} is listed twice; list each device once", {"at": str(index)}
                )
        return value
