"""The simulator's clock, followed over INDI: `SIM_CLOCK` on the `Sim Clock` device.

A `Clock` like `agent.clock.RealClock`, so a simulated night at x60 runs the same code as a real one.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from agent.clock import parse_utc
from agent.devices.client import IndiClient
from agent.errors import IndiError


class SimClock:
    """Follows the simulator's SIM_CLOCK property (UTC text + TIME_FACTOR) on the `Sim Clock` device.

    Between updates it extrapolates from the last reading with the published factor, so `now()`
    is smooth and needs no shared configuration with the simulator.
    """

    PROPERTY = "SIM_CLOCK"

    def __init__(self, client: IndiClient, device: str = "Sim Clock") -> None:
        self.client = client
        self.device = device
        self._anchor: tuple[int, dt.datetime, float, float, dt.datetime | None, float] | None = None

    def _read(self) -> tuple[dt.datetime, float, float, dt.datetime | None, float]:
        """(sim time at the anchor, wall monotonic at the anchor, factor, fast-forward end, base factor)."""
        try:
            snap = self.client.get(self.device, self.PROPERTY)
        except IndiError:
            if self._anchor is None:
                snap = self.client.wait_property(self.device, self.PROPERTY, timeout=10.0)
            else:
                return self._anchor[1:]
        if self._anchor is None or snap.version != self._anchor[0]:
            sim = parse_utc(str(snap.values["UTC"]))
            factor = float(snap.values.get("TIME_FACTOR", 1.0))
            base = float(snap.values.get("BASE_FACTOR") or factor)
            until_text = str(snap.values.get("FAST_UNTIL") or "")
            until = parse_utc(until_text) if until_text else None
            self._anchor = (snap.version, sim, time.monotonic(), factor, until, base)
        return self._anchor[1:]

    @property
    def time_factor(self) -> float:
        sim, wall, factor, until, base = self._read()
        if until is not None and self.now() >= until:
            return base
        return factor

    def now(self) -> dt.datetime:
        """The simulator's time, extrapolated the way the simulator itself runs (fast-forward included)."""
        sim, wall, factor, until, base = self._read()
        elapsed = time.monotonic() - wall
        t = sim + dt.timedelta(seconds=elapsed * factor)
        if until is not None and t > until:
            reached = (until - sim).total_seconds() / factor
            t = until + dt.timedelta(seconds=(elapsed - reached) * base)
        return t

    def set_factor(self, factor: float) -> None:
        """Ask the simulator to run at another speed."""
        self.client.set_number(self.device, "SIM_TIME_FACTOR", {"TIME_FACTOR": factor})

    def fast_forward(self, until: dt.datetime | None, factor: float) -> None:
        """Run the simulator fast until `until`; it falls back by itself, even if we die meanwhile."""
        unix = until.timestamp() if until is not None else 0.0
        self.client.set_number(self.device, "SIM_FAST_FORWARD", {"UNTIL": unix, "FACTOR": factor})

    def sleep(self, seconds: float, abort: threading.Event | None = None) -> bool:
        """Sleep in simulated seconds: wall time is seconds / factor, re-read as the factor may change."""
        end = self.now() + dt.timedelta(seconds=seconds)
        while True:
            remaining = (end - self.now()).total_seconds()
            if remaining <= 0:
                return not (abort and abort.is_set())
            wall = min(remaining / max(self.time_factor, 1e-9), 0.5)
            if abort is not None:
                if abort.wait(wall):
                    return False
            else:
                time.sleep(wall)
