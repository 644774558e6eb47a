"""A simulated clock for the replay driver, so a whole night runs against replayed devices.

Real drivers have no simulated time; the replay driver hosts this extra device (like indi_sim's
`Sim Clock`, `indi_sim/clock.py`) publishing SIM_CLOCK (UTC, TIME_FACTOR, BASE_FACTOR, FAST_UNTIL)
every wall second and taking SIM_TIME_FACTOR and SIM_FAST_FORWARD, with the same time arithmetic
(`indi_sim.config.SimClock`). The night follows it when present (`agent/night/runner.py`,
`pick_clock`); the replay devices' exposures and cooler run at the base time factor.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from indi_sim.config import SimClock, parse_instant

CLOCK_DEVICE = "Replay Clock"


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


class ReplayClock:
    """SIM_CLOCK, SIM_TIME_FACTOR and SIM_FAST_FORWARD on the `Replay Clock` device (no CONNECTION)."""

    def __init__(self, vector_type: Any, start: str, factor: float) -> None:
        self.name = CLOCK_DEVICE
        self.clock = SimClock(parse_instant(start), factor)
        self.props = {
            "SIM_CLOCK": vector_type(self.name, ("text", "SIM_CLOCK", "ro", None, [
                ("UTC", "UTC", ""), ("TIME_FACTOR", "Time factor", ""), ("BASE_FACTOR", "Base time factor", ""),
                ("FAST_UNTIL", "Fast until", "")])),
            "SIM_TIME_FACTOR": vector_type(self.name, ("number", "SIM_TIME_FACTOR", "rw", None, [
                ("TIME_FACTOR", "Sim s per wall s", 0.001, 100000, 0, factor)])),
            "SIM_FAST_FORWARD": vector_type(self.name, ("number", "SIM_FAST_FORWARD", "rw", None, [
                ("UNTIL", "Until (unix s, 0 = stop)", 0, 1e11, 0, 0), ("FACTOR", "Sim s per wall s", 1, 1e6, 0, factor)])),
        }
        self._refresh()
        self._lock = threading.Lock()
        threading.Thread(target=self._tick, daemon=True).start()

    def _refresh(self) -> None:
        c = self.clock
        members = self.props["SIM_CLOCK"].members
        members["UTC"]["value"] = _iso(c.now())
        members["TIME_FACTOR"]["value"] = f"{c.factor:g}"
        members["BASE_FACTOR"]["value"] = f"{c.base_factor:g}"
        members["FAST_UNTIL"]["value"] = _iso(c.fast_until) if c.fast_until else ""

    def define(self) -> None:
        self._refresh()
        for v in self.props.values():
            v.state = "Ok"
            v.define()

    def publish(self) -> None:
        self._refresh()
        self.props["SIM_CLOCK"].publish("Ok")

    def _tick(self) -> None:
        while True:
            time.sleep(1.0)
            with self._lock:
                self.publish()

    def handle(self, name: str, values: dict[str, str]) -> None:
        v = self.props.get(name)
        if v is None or v.perm == "ro":
            return
        with self._lock:
            if name == "SIM_TIME_FACTOR":
                factor = float(values.get("TIME_FACTOR", "0"))
                if factor <= 0:
                    v.publish("Alert", "time factor must be > 0")
                    return
                self.clock.set_factor(factor)
                v.members["TIME_FACTOR"]["value"] = factor
            else:
                until_unix = float(values.get("UNTIL", "0"))
                factor = float(values.get("FACTOR", str(self.clock.base_factor)))
                if factor <= 0:
                    v.publish("Alert", "fast-forward factor must be > 0")
                    return
                until = datetime.fromtimestamp(until_unix, UTC) if until_unix > 0 else None
                self.clock.fast_forward(until, factor)
                v.members["UNTIL"]["value"], v.members["FACTOR"]["value"] = until_unix, factor
            v.publish("Ok")
            self.publish()
