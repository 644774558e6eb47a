"""Clocks: what every wait, window and timeout asks for the time.

Every wait, window and timeout in the night goes through a `Clock`, so a simulated night at
×60 runs the same code as a real one. Waits are abortable: they return early when the abort
event is set.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol

UTC = dt.UTC


class Clock(Protocol):
    @property
    def time_factor(self) -> float: ...

    def now(self) -> dt.datetime: ...

    def sleep(self, seconds: float, abort: threading.Event | None = None) -> bool:
        """Sleep `seconds` of clock time; False when aborted early."""
        ...


class RealClock:
    time_factor = 1.0

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def sleep(self, seconds: float, abort: threading.Event | None = None) -> bool:
        if seconds <= 0:
            return not (abort and abort.is_set())
        if abort is None:
            time.sleep(seconds)
            return True
        return not abort.wait(seconds)


def parse_utc(text: str) -> dt.datetime:
    value = text.strip().replace("Z", "+00:00")
    when = dt.datetime.fromisoformat(value)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
