"""Weather devices and safety monitors: may the telescope be open?

What INDI drivers publish (libindi `indiweatherinterface.cpp`, read for 1.9.9 and 2.x):

- `WEATHER_PARAMETERS` (numbers): one reading every `WEATHER_UPDATE.PERIOD` seconds (default 60;
  0 turns periodic updates off). State Ok for a good reading; Alert when the update failed (the
  values are the old ones, retried every 5 s); Busy (2.x) while an update is under way.
- `WEATHER_STATUS` (lights): one light per critical parameter, Ok, Busy (the warning zone: within
  PERC_WARN % of an edge of MIN_OK..MAX_OK) or Alert (outside it). The vector's state is the
  worst light, or Ok whatever the lights while `WEATHER_OVERRIDE` is on. Idle until the first
  reading. 1.9.9 sends it only when a light changes, 2.x with every reading; either way just
  before the WEATHER_PARAMETERS of the same reading (a reason quotes the value once it is in).
- `SAFETY_STATUS` (lights, INDI >= 2.1.7): the same verdict, also from devices that are no weather
  station: the UPS driver, and the Safety Monitor (`indi_safetymonitor`) which combines other
  devices' SAFETY_STATUS and publishes only when it changes (an offline device counts as Idle there).
- The weather safety proxy is a weather device: one parameter WEATHER_SAFETY (1 safe, 0 unsafe) and
  its reasons in WEATHER_SAFETY_REASONS.

A reading's age is measured from when *we* received it, on the agent's clock: the timestamps in
INDI messages are the driver host's clock, which on a Pi without an RTC is wrong until NTP syncs.
A device without WEATHER_PARAMETERS (a safety monitor) sends only changes, so only its presence,
connection and state are judged. Staleness has no callback of its own: it is noticed whenever a
property of a watched device arrives or someone asks `conditions()` (the night asks often).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agent.clock import UTC
from agent.devices.client import IndiClient
from agent.devices.snapshot import PropertySnapshot
from agent.errors import IndiError

log = logging.getLogger(__name__)

UnsafeOn = Literal["alert", "warning"]
VERDICT_PROPS = ("WEATHER_STATUS", "SAFETY_STATUS")
READING_PROP = "WEATHER_PARAMETERS"
BAD = {"alert": ("Alert",), "warning": ("Alert", "Busy")}
WORDS = {"Alert": "alert", "Busy": "warning"}


@dataclass(frozen=True)
class Conditions:
    """The verdict at one moment. `reasons` say why it is unsafe; when safe they hold notes worth
    showing (no device, a warning below the `unsafe_on` level, an override)."""

    safe: bool
    reasons: list[str]
    parameters: dict[str, float]
    age_s: float | None  # the oldest device's last reading; None before any reading


class WeatherWatch:
    """Follows weather devices and safety monitors through the client's property updates."""

    def __init__(
        self,
        client: IndiClient,
        devices: list[str],
        max_age_s: float,
        unsafe_on: UnsafeOn = "alert",
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if unsafe_on not in BAD:
            raise ValueError(f"unsafe_on must be 'alert' or 'warning', not {unsafe_on!r}")
        self.client = client
        self.devices = list(dict.fromkeys(devices))
        self.max_age_s = float(max_age_s)
        # clock seconds added to the limit for delivery: a simulator racing at ×N delivers a reading
        # a few wall milliseconds late, which is N times that in its clock (0 for real time)
        self.slack: Callable[[], float] = lambda: 0.0
        self.unsafe_on: UnsafeOn = unsafe_on
        self.now = now or (lambda: dt.datetime.now(UTC))
        self.changed = threading.Event()
        self._watched = set(self.devices)
        self._lock = threading.RLock()
        self._received: dict[str, dt.datetime] = {}  # device -> when its last good reading arrived
        self._failing: set[str] = set()  # devices whose last update failed (WEATHER_PARAMETERS Alert)
        self._callbacks: list[Callable[[Conditions], None]] = []
        self._safe: bool | None = None
        self._started = False

    # ---- life ----------------------------------------------------------------------------------
    def start(self, connect: bool = True) -> None:
        """Subscribe to the client's updates; connect watched devices that are present but not
        connected (call from the thread that owns the client: it sends)."""
        if not self._started:
            self._started = True
            self.client.add_watcher(self._on_change)
        for device in self.devices:
            if self.client.has(device, READING_PROP):
                self._note_reading(device)  # the driver's current values, defined before we started
            if connect and device in self.client.devices() and not self.client.has(device, "CONNECTION"):
                with contextlib.suppress(IndiError):  # defined in a burst: CONNECTION may come a moment later
                    self.client.wait_property(device, "CONNECTION", timeout=3.0)
            if connect and self.client.has(device, "CONNECTION") and not self._connected(device):
                with contextlib.suppress(IndiError):
                    self.client.send_switch(device, "CONNECTION", ["CONNECT"])
        self._evaluate()

    def stop(self) -> None:
        self.client.remove_watcher(self._on_change)
        self._started = False

    def on_unsafe(self, callback: Callable[[Conditions], None]) -> None:
        """`callback(conditions)` when the verdict turns unsafe, on the thread that noticed (INDI's
        listener, or whoever asked `conditions()`): it must be quick; what it raises is logged."""
        with self._lock:
            self._callbacks.append(callback)

    def conditions(self) -> Conditions:
        return self._evaluate()

    # ---- INDI's thread -------------------------------------------------------------------------
    def _on_change(self, device: str, name: str) -> None:
        if device and device not in self._watched:
            return  # cameras and mounts update all the time: nothing to do for them
        if name == READING_PROP:
            self._note_reading(device)
        if device:
            self.changed.set()
        self._evaluate()

    def _note_reading(self, device: str) -> None:
        snap = self._snap(device, READING_PROP)
        if snap is None:
            return
        with self._lock:
            if snap.state in ("Ok", "Idle"):
                self._received[device] = self.now()
                self._failing.discard(device)
            elif snap.state == "Alert":
                self._failing.add(device)

    # ---- judging -------------------------------------------------------------------------------
    def _evaluate(self) -> Conditions:
        with self._lock:
            verdict = self._judge()
            turned_unsafe = not verdict.safe and self._safe is not False
            flipped = self._safe is not None and self._safe != verdict.safe
            self._safe = verdict.safe
            callbacks = list(self._callbacks) if turned_unsafe else []
        if flipped:
            self.changed.set()
        for callback in callbacks:
            try:
                callback(verdict)
            except Exception:  # noqa: BLE001 - runs on libindi's thread, where raising kills the process
                log.exception("on_unsafe callback failed")
        return verdict

    def _judge(self) -> Conditions:
        if not self.devices:
            return Conditions(True, ["no weather device"], {}, None)
        if not self.client.connected:
            return Conditions(False, [f"lost the INDI server at {self.client.address}"], {}, None)
        now = self.now()
        unsafe: list[str] = []
        notes: list[str] = []
        parameters: dict[str, float] = {}
        ages: list[float] = []
        for device in self.devices:
            bad, note, values, age = self._judge_device(device, now)
            unsafe += bad
            notes += note
            prefix = f"{device}." if len(self.devices) > 1 else ""
            parameters.update({prefix + k: v for k, v in values.items()})
            if age is not None:
                ages.append(age)
        age_s = max(ages) if ages else None
        return Conditions(not unsafe, unsafe or notes, parameters, age_s)

    def _judge_device(
        self, device: str, now: dt.datetime
    ) -> tuple[list[str], list[str], dict[str, float], float | None]:
        if device not in self.client.devices():
            return [f"{device}: not found on {self.client.address}; start its driver or fix the name "
                    "in safety.weather"], [], {}, None
        if not self._connected(device):
            return [f"{device}: disconnected"], [], {}, None
        readings = self._snap(device, READING_PROP)
        values = {k: float(v) for k, v in readings.values.items()} if readings else {}
        verdicts = [s for s in (self._snap(device, p) for p in VERDICT_PROPS) if s is not None]
        bad: list[str] = []
        notes: list[str] = []
        if not verdicts:
            bad.append(f"{device}: publishes neither WEATHER_STATUS nor SAFETY_STATUS (yet)")
        states = {s.state for s in verdicts}
        if "Idle" in states and not states & {"Alert", "Busy"}:
            bad.append(f"{device}: no verdict yet")
        for level in ("Alert", "Busy"):
            if level in states:
                words = self._why(device, verdicts, level, readings)
                (bad if level in BAD[self.unsafe_on] else notes).extend(words)
                break
        override = self._snap(device, "WEATHER_OVERRIDE")
        if override is not None and override.values.get("OVERRIDE"):
            notes.append(f"{device}: weather override is on (the driver reports Ok whatever the readings)")
        age = None
        if readings is not None:
            with self._lock:
                received = self._received.get(device)
                if received is not None and received > now:  # our clock stepped back: restart the count
                    received = self._received[device] = now
                failing = device in self._failing
            if received is None:
                bad.append(f"{device}: no reading yet")
            else:
                age = (now - received).total_seconds()
                if age > self.max_age_s + self.slack():
                    bad.append(self._stale(device, age, failing))
        return bad, notes, values, age

    def _why(
        self, device: str, verdicts: list[PropertySnapshot], level: str, readings: PropertySnapshot | None
    ) -> list[str]:
        """One reason per light at `level`, named by the parameter's label and value."""
        word = WORDS[level]
        out: list[str] = []
        for snap in verdicts:  # WEATHER_STATUS names the parameters; SAFETY_STATUS only when alone
            for element, state in snap.values.items():
                if state != level or out and snap.name == "SAFETY_STATUS":
                    continue
                if readings is not None and element in readings.values:
                    label = readings.labels.get(element) or element
                    # the lights arrive just before the values of their reading: quote only those
                    value = f" {float(readings.values[element]):g}" if readings.version > snap.version else ""
                    out.append(f"{device}: {label}{value} ({word})")
                elif element == "SAFETY":
                    out.append(f"{device}: SAFETY_STATUS {word}")
                else:
                    out.append(f"{device}: {element} {word}")  # a safety monitor's light per device
        out = out or [f"{device}: {verdicts[0].name} {word}"]
        reasons = self._snap(device, "WEATHER_SAFETY_REASONS")  # the weather safety proxy says why
        text = str(next(iter(reasons.values.values()), "")).strip() if reasons else ""
        if text:
            out[-1] += f" ({text})"
        return out

    def _stale(self, device: str, age: float, failing: bool) -> str:
        text = f"{device}: stale: no reading for {age:.0f} s (limit {self.max_age_s:g} s"
        period = self._snap(device, "WEATHER_UPDATE")
        seconds = float(period.values.get("PERIOD", -1)) if period else -1.0
        if seconds == 0:
            text += "; its periodic updates are off: set its WEATHER_UPDATE period"
        elif seconds > self.max_age_s:
            text += f"; it updates every {seconds:g} s: set its WEATHER_UPDATE below {self.max_age_s:g} s"
        if failing:
            text += "; its last updates failed"
        return text + ")"

    def _snap(self, device: str, name: str) -> PropertySnapshot | None:
        try:
            return self.client.get(device, name) if self.client.has(device, name) else None
        except IndiError:
            return None

    def _connected(self, device: str) -> bool:
        conn = self._snap(device, "CONNECTION")
        return conn is None or bool(conn.values.get("CONNECT"))
