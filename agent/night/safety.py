"""Is the sky usable? Weather devices, stale readings, clouds in our own lights and the disk decide.

The gate is read by the runner thread and fed by two others: INDI's listener (a weather device
turning unsafe trips it at once) and a small monitor thread (a reading that grows stale, safe
again, the hysteresis). It never touches the hardware itself: the runner owns the client, and
closes up (`agent.night.closeup`) as soon as the gate trips — the running exposure is stopped
through `SkyStop`, which the camera polls while it waits for the image.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.devices.weather import WeatherWatch
    from agent.night.context import NightContext

log = logging.getLogger(__name__)

DELIVERY_WALL_S = 1.0  # wall seconds a reading may take to reach us (a racing simulator's clock)
SETTLE_WALL_S = 10.0  # at the start: how long the weather devices get to connect and report
POLL_S = 0.25  # wall seconds between two looks at the readings (staleness, safe again)
CLOUDY_IN_A_ROW = 3  # cloudy lights in a row before imaging pauses
CLOUD_PAUSES_MIN = (15, 30, 60)  # each further pause in a night is longer (minutes of clock time)


@dataclass
class Reading:
    safe: bool
    reasons: list[str]


class SafetyGate:
    """Weather safety with hysteresis, plus imaging pauses for clouds and a full disk."""

    def __init__(
        self,
        now: Callable[[], dt.datetime],
        resume_after_s: float,
        watch: WeatherWatch | None = None,
        wake: Callable[[], None] | None = None,
        last_unsafe: dt.datetime | None = None,
    ) -> None:
        self.now = now
        self.resume_after = dt.timedelta(seconds=resume_after_s)
        self.watch = watch
        self.wake = wake or (lambda: None)
        self.unsafe = threading.Event()  # conditions are unsafe right now
        self.closed_up = False  # the runner has closed up for the current episode
        self._lock = threading.Lock()
        self._reasons: list[str] = []
        self._last_unsafe = last_unsafe
        self._safe_since: dt.datetime | None = last_unsafe  # after a restart: counted from the last unsafe
        self._cloudy = 0
        self._cloud_pauses = 0
        self._clouded_until: dt.datetime | None = None
        self._disk_low: str | None = None
        self._stop = threading.Event()
        self._trip_mono: float | None = None  # monotonic time of this episode's first unsafe reading
        self._tripped_at: dt.datetime | None = None  # the same on the night's clock
        self._thread: threading.Thread | None = None
        self.rig_back: dt.datetime | None = None  # when the runner last got the rig (the start, a reconnection)

    # ---- feeding -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.watch is None:
            return
        self.watch.start()
        deadline = time.monotonic() + SETTLE_WALL_S
        while time.monotonic() < deadline and not _known(self.watch.conditions()):
            self.watch.changed.wait(0.2)  # a device just connected has not reported yet
            self.watch.changed.clear()
        self.watch.on_unsafe(self._trip)
        self._look()
        self._thread = threading.Thread(target=self._monitor, name="weather-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.watch is not None:
            self.watch.stop()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _trip(self, conditions: Any = None) -> None:
        """INDI's thread: a device says unsafe. Cheap: note the moment and why, flag it, wake the runner."""
        if self._trip_mono is None:
            self._trip_mono = time.monotonic()
            try:
                self._tripped_at = self.now()  # outside the client's lock: safe to read the clock here
            except Exception:  # noqa: BLE001 - the estimate from the monotonic clock stays
                self._tripped_at = None
        reasons = list(getattr(conditions, "reasons", None) or [])
        if reasons:
            with self._lock:
                self._reasons = reasons
        self.unsafe.set()
        self.wake()

    def seen_unsafe_at(self, time_factor: float = 1.0) -> dt.datetime | None:
        """When this episode's first unsafe reading arrived (clock time), or None."""
        mark = self._trip_mono
        if mark is None:
            return None
        if self._tripped_at is not None:
            return self._tripped_at
        return self.now() - dt.timedelta(seconds=(time.monotonic() - mark) * time_factor)

    def reconnected(self) -> None:
        """After a lost server: the weather devices are connected again (the runner's thread)."""
        self.rig_back = self.now()
        if self.watch is not None:
            self.watch.start(connect=True)

    def _monitor(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._look()
            except Exception:  # noqa: BLE001 - a bad reading must not end the monitor
                log.exception("reading the weather devices failed")
                self._trip()

    def _look(self) -> None:
        assert self.watch is not None
        conditions = self.watch.conditions()
        self.update(Reading(bool(conditions.safe), list(conditions.reasons)))

    def update(self, reading: Reading) -> None:
        """Record one reading (clock time now)."""
        now = self.now()
        with self._lock:
            if not reading.safe:
                self._reasons = reading.reasons or ["unsafe"]
                self._last_unsafe = now
                self._safe_since = None
                newly = not self.unsafe.is_set()
                if self._trip_mono is None:
                    self._trip_mono = time.monotonic()
                    self._tripped_at = now
                self.unsafe.set()
            else:
                newly = False
                if self.unsafe.is_set():
                    self._safe_since = now  # the hysteresis counts from the first safe reading
                self._trip_mono = None
                self._tripped_at = None
                self.unsafe.clear()
        if newly:
            log.warning("weather unsafe at %s: %s", f"{now:%H:%M:%S}", "; ".join(reading.reasons))
            self.wake()
        elif reading.safe and self._safe_since == now and self._last_unsafe is not None:
            log.info("weather safe again at %s", f"{now:%H:%M:%S}")
            self.wake()  # a closed night naps long: it learns at once when the hysteresis starts

    # ---- asking --------------------------------------------------------------------------------
    @property
    def safe_since(self) -> dt.datetime | None:
        """The first safe reading after the last unsafe one (the hysteresis counts from it)."""
        with self._lock:
            return self._safe_since

    @property
    def last_unsafe(self) -> dt.datetime | None:
        with self._lock:
            return self._last_unsafe

    def resume_at(self) -> dt.datetime | None:
        """When the sky may be used again, None when that is not known yet (still unsafe)."""
        with self._lock:
            if self.unsafe.is_set():
                return None
            moments = []
            if self._last_unsafe is not None and self._safe_since is not None:
                moments.append(self._safe_since + self.resume_after)
            if self._clouded_until is not None:
                moments.append(self._clouded_until)
            return max(moments) if moments else self.now()

    def hold_reason(self, now: dt.datetime | None = None) -> str | None:
        """Why the sky must not be used now (None: go ahead)."""
        now = now or self.now()
        with self._lock:
            if self.unsafe.is_set():
                return "unsafe: " + "; ".join(self._reasons or ["unsafe"])
            since = self._safe_since
            if self._last_unsafe is not None and since is not None and now - since < self.resume_after:
                left = since + self.resume_after - now
                return f"waiting for {int(left.total_seconds() // 60) + 1} min of safe conditions"
            if self._clouded_until is not None and now < self._clouded_until:
                return f"clouded out until {self._clouded_until:%H:%M} UTC"
            if self._disk_low is not None:
                return self._disk_low
        return None

    def sky_ok(self, now: dt.datetime | None = None) -> bool:
        return self.hold_reason(now) is None

    # ---- clouds and disk ----------------------------------------------------------------------
    def report_light(self, cloudy: bool) -> str | None:
        """A light was judged; after a few cloudy ones in a row imaging pauses. Returns the pause note."""
        now = self.now()
        with self._lock:
            if not cloudy:
                self._cloudy = 0
                return None
            self._cloudy += 1
            if self._cloudy < CLOUDY_IN_A_ROW or (self._clouded_until is not None and now < self._clouded_until):
                return None
            minutes = CLOUD_PAUSES_MIN[min(self._cloud_pauses, len(CLOUD_PAUSES_MIN) - 1)]
            self._cloud_pauses += 1
            self._cloudy = 0
            self._clouded_until = now + dt.timedelta(minutes=minutes)
        self.wake()
        return f"{CLOUDY_IN_A_ROW} cloudy lights in a row: imaging pauses for {minutes} min"

    def clouded(self, now: dt.datetime | None = None) -> bool:
        now = now or self.now()
        with self._lock:
            return self._clouded_until is not None and now < self._clouded_until

    @property
    def disk_low(self) -> bool:
        with self._lock:
            return self._disk_low is not None

    def set_disk_low(self, message: str | None) -> None:
        with self._lock:
            self._disk_low = message


def _known(conditions: Any) -> bool:
    """A first reading and its verdict have arrived (a device just connected sends them in turn)."""
    reasons = " ".join(conditions.reasons)
    return conditions.age_s is not None and "no verdict" not in reasons and "disconnected" not in reasons


class SkyStop:
    """The camera's stop signal: a stop request, or unsafe weather while the telescope is open.

    A dark behind a closed cap is not stopped by rain; a light or a sky flat is, at once.
    """

    def __init__(self, abort: threading.Event, gate: SafetyGate | None) -> None:
        self.abort = abort
        self.gate = gate
        self.covered = False  # the cap is closed over the telescope (darks, bias, panel flats)

    def is_set(self) -> bool:
        if self.abort.is_set():
            return True
        return self.gate is not None and not self.covered and self.gate.unsafe.is_set()


def open_gate(ctx: NightContext) -> SafetyGate:
    """The night's gate from the sequence's `safety:` section, fed by the weather devices named there."""
    settings = ctx.seq.safety
    watch = None
    if settings.weather:
        from agent.devices.weather import WeatherWatch

        watch = WeatherWatch(
            ctx.rig.client, list(settings.weather), settings.max_age, settings.unsafe_on, ctx.clock.now
        )
        watch.slack = lambda: DELIVERY_WALL_S * max(ctx.clock.time_factor - 1.0, 0.0)
    last = dt.datetime.fromisoformat(ctx.progress.last_unsafe) if ctx.progress.last_unsafe else None

    def wake() -> None:
        ctx.alarm.set()
        ctx.rig.client.wake()

    gate = SafetyGate(ctx.clock.now, settings.resume_after, watch, wake, last)
    ctx.safety = gate
    ctx.sky_stop = SkyStop(ctx.abort, gate)
    ctx.rig.camera.stop_event = ctx.sky_stop
    if ctx.rig.mount is not None:
        ctx.rig.mount.interrupt = gate.unsafe.is_set  # a slew into rain stops; the close-up parks
    gate.start()
    return gate
