"""Is the cooler's reading alive? A frozen CCD_TEMPERATURE would file every dark under a wrong key.

Drivers poll the sensor every second or so and the reading jitters by a few hundredths; a reading
that has not moved for many minutes while the cooler's power changed, or while it sits far from
the set-point, is a driver or USB fault (seen with cameras whose temperature query fails and the
driver keeps publishing the last good value).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TemperatureWatch:
    window_s: float = 600.0  # a reading unchanged this long is suspect
    tolerance_c: float = 1.0  # ... when further than this from the set-point
    clock: Callable[[], float] = time.monotonic
    _value: float | None = None
    _since: float = 0.0
    _power_at_change: float | None = None
    _power_moved: bool = False
    _off_set_point: bool = False

    def observe(self, celsius: float, power: float | None = None, set_point: float | None = None) -> None:
        now = self.clock()
        if self._value is None or celsius != self._value:
            self._value, self._since = celsius, now
            self._power_at_change, self._power_moved = power, False
        elif power is not None and self._power_at_change is not None and abs(power - self._power_at_change) > 5.0:
            self._power_moved = True
        self._off_set_point = set_point is not None and abs(celsius - set_point) > self.tolerance_c

    def frozen(self) -> bool:
        if self._value is None:
            return False
        stuck = self.clock() - self._since >= self.window_s
        return stuck and (self._power_moved or self._off_set_point)
