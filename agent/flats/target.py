"""What a flat must be: the target level and its checks, the settings that reach it, the errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.errors import ObsAgentError

FULL_SCALE_ADU = 65535.0


class FlatError(ObsAgentError):
    """Flats cannot be taken with this rig or these settings."""


class PanelIgnored(FlatError):
    """The camera's flat level does not follow the panel (e.g. the stock CCD simulator)."""


class PanelTooBright(FlatError):
    """Even the lowest brightness and the shortest allowed exposure saturate."""


class PanelTooDim(FlatError):
    """Even the highest brightness and the longest allowed exposure stay below the target."""


@dataclass(frozen=True)
class FlatTarget:
    """The mean level flats should have, as fractions of full scale."""

    fraction: float = 0.45
    tolerance: float = 0.05
    full_scale: float = FULL_SCALE_ADU
    saturation_fraction: float = 0.95

    @property
    def level(self) -> float:
        return self.fraction * self.full_scale

    @property
    def low(self) -> float:
        return (self.fraction - self.tolerance) * self.full_scale

    @property
    def high(self) -> float:
        return (self.fraction + self.tolerance) * self.full_scale

    @property
    def saturation(self) -> float:
        return self.saturation_fraction * self.full_scale

    def within(self, level: float, share: float = 1.0) -> bool:
        """True when `level` is within `share` of the tolerance around the target."""
        return abs(level - self.level) <= self.tolerance * self.full_scale * share

    def saturated(self, level: float) -> bool:
        return level >= self.saturation

    def describe(self, level: float) -> str:
        return f"{100 * level / self.full_scale:.1f} %"

    def band(self) -> str:
        return f"{100 * (self.fraction - self.tolerance):.0f}–{100 * (self.fraction + self.tolerance):.0f} %"


def frame_level(data: np.ndarray) -> float:
    """Median ADU of a frame, from every other pixel (the median is stable and this halves the work)."""
    sample = data[::2, ::2] if data.shape[0] >= 16 and data.shape[1] >= 16 else data
    return float(np.median(sample))


@dataclass(frozen=True)
class PanelSettings:
    """Brightness (None: a panel without intensity control) and exposure that give the target level."""

    brightness: float | None
    exposure: float
    level: float  # the level these settings gave (or are predicted to give after a final exposure trim)
