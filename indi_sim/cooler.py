"""The camera's cooler: sensor temperature that ramps toward the set-point and settles there, or
stops short of it when the cooler is weak (the FAULT_COOLER_WEAK fault) or the set-point too low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WEAK_COOLER_DELTA_C = 5.0  # what a weak cooler still reaches below ambient


@dataclass
class Cooler:
    """Sensor temperature that ramps toward the set-point and settles (or cannot reach it)."""

    ambient_c: float
    max_delta_c: float
    rate_c_per_min: float
    temperature_c: float = 0.0
    set_point_c: float = 0.0
    on: bool = False
    weak: bool = False
    tau_s: float = 60.0

    def __post_init__(self) -> None:
        self.temperature_c = self.ambient_c
        self.set_point_c = self.ambient_c

    @property
    def delta_c(self) -> float:
        return WEAK_COOLER_DELTA_C if self.weak else self.max_delta_c

    def target(self) -> float:
        return max(self.set_point_c, self.ambient_c - self.delta_c) if self.on else self.ambient_c

    def advance(self, sim_seconds: float) -> None:
        if sim_seconds <= 0:
            return
        gap = self.target() - self.temperature_c
        step = gap * (1.0 - math.exp(-sim_seconds / self.tau_s))
        limit = self.rate_c_per_min * sim_seconds / 60.0
        self.temperature_c += max(-limit, min(limit, step))

    def power_percent(self) -> float:
        if not self.on:
            return 0.0
        return max(0.0, min(100.0, 100.0 * (self.ambient_c - self.temperature_c) / self.delta_c))
