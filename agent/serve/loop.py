"""The service's loop: the day (idle until the cooler must start), the night, the next day …

The main thread owns signals and the watchdog; each night runs on a runner thread (which owns its
INDI client). Nothing a rig can do makes the loop exit: a server that is down, a device that is
missing, a night that had to stop — each is said (log, notification), then retried with backoff.
Only a stop request (SIGTERM, SIGINT) or the `--nights` count ends it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from agent.clock import Clock
from agent.errors import DeviceMissing, ObsAgentError
from agent.serve.calendar import current_night, night_over, night_start, too_late_to_start
from agent.serve.sequence_file import SequenceFile

log = logging.getLogger(__name__)

BACKOFF_S = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0)  # wall seconds between retries of a failing night
POLL_S = 0.2


@dataclass
class ServeOptions:
    data: Path
    indi: str
    nights: int | None = None  # stop after this many finished nights (None: run for ever)
    last_night: dt.date | None = None  # stop once this night is finished (survives a restart)
    fast_forward: float | None = None  # simulator only: speed while waiting through the day
    uploads: Any = None  # the night's uploader factory
    notify: Callable[[str, str, str], None] | None = None
    service: Any = None  # systemd readiness and watchdog (ready/status/watchdog/stopping)


@dataclass
class ServeResult:
    nights: list[str] = field(default_factory=list)  # nights finished by this process
    stopped: str | None = None


class ServeLoop:
    def __init__(self, sequence: SequenceFile, options: ServeOptions) -> None:
        self.sequence = sequence
        self.options = options
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.runner: Any = None
        self.result = ServeResult()
        self._failures = 0
        self._last_ping = 0.0
        self._had_library = False

    # ---- signals (main thread) ------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload.set()
            return
        name = signal.Signals(signum).name
        self.result.stopped = name
        self.stop.set()
        runner = self.runner
        if runner is not None:
            runner.request_stop(name)

    def run(self) -> ServeResult:
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        old = {s: signal.signal(s, self._on_signal) for s in handled}
        self._service("ready")
        try:
            while not self.stop.is_set():
                if self.options.nights is not None and len(self.result.nights) >= self.options.nights:
                    break
                if self.options.last_night is not None and self._finished(self.options.last_night):
                    break
                self._check_reload()
                try:
                    self._one_night()
                    self._failures = 0
                except ObsAgentError as exc:
                    if self.stop.is_set():
                        break
                    self._retry_later(str(exc), "device_missing" if isinstance(exc, DeviceMissing) else "fault")
        finally:
            self._service("stopping")
            for s, handler in old.items():
                signal.signal(s, handler)
        return self.result

    # ---- the day and the night ------------------------------------------------------------------
    def _one_night(self) -> None:
        from agent.night.progress import ProgressStore

        seq = self.sequence.current
        self._check_data_folder()
        clock, client = self._day_clock()
        try:
            store = ProgressStore(self.options.data)
            now = clock.now()
            done = {n for n in store.nights() if (p := store.load(n)) is not None and p.state == "done"}
            night = current_night(seq, now, done)
            begun = store.load(night.isoformat()) is not None
            if night_over(seq, night, now) or (not begun and too_late_to_start(seq, night, now)):
                night += dt.timedelta(days=1)  # missed (the service was down, or installed this morning)
            start = night_start(seq, night)
            if now < start:
                self._service("status", f"day: the night of {night} starts cooling at {start:%Y-%m-%d %H:%M} UTC")
                log.info("waiting for the night of %s (cooling starts %s UTC)", night, f"{start:%H:%M}")
                if self._wait_until(clock, start) != "reached":
                    return  # stopped, or a reloaded file: plan the day again
        finally:
            client.disconnect()
        self._run_night(night)

    def _run_night(self, night: dt.date) -> None:
        from agent.night.runner import NightRunner

        seq = self.sequence.current
        runner = NightRunner(
            seq, self.options.data, indi=self.options.indi, night=night,
            uploads=self.options.uploads, notify=self.options.notify,
        )
        if self.options.fast_forward:
            runner.fast_forward = self.options.fast_forward
        self.runner = runner
        if self.stop.is_set():
            return
        errors: list[BaseException] = []

        def target() -> None:
            try:
                runner.run()
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                errors.append(exc)

        from agent.serve.nightlog import attach_night_log

        self._service("status", f"night of {night}")
        handler = attach_night_log(self.options.data, night.isoformat())
        worker = threading.Thread(target=target, name="night-runner", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(POLL_S)
                self._ping()
                self._check_reload()
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
        self.runner = None
        if errors:
            raise errors[0]
        result = runner.result
        if result is None or self.stop.is_set():
            return
        if result.final_state == "done":
            self.result.nights.append(result.night)
            self._summary(result.night)
            return
        raise ObsAgentError(f"the night of {result.night} stopped: {result.reason}")

    def _finished(self, night: dt.date) -> bool:
        from agent.night.progress import ProgressStore

        progress = ProgressStore(self.options.data).load(night.isoformat())
        return progress is not None and progress.state == "done"

    def _check_data_folder(self) -> None:
        """A data folder that held a library and vanished (a pulled disk) is waited for, never
        recreated empty on the system disk."""
        from agent.library.store import DB_NAME

        db = self.options.data / DB_NAME
        if db.exists():
            self._had_library = True
        elif self._had_library:
            raise ObsAgentError(f"the data folder {self.options.data} is gone (disk unplugged?); plug it back in")

    def _summary(self, night: str) -> None:
        if self.options.notify is None:
            return
        from agent.night.report import build_report

        report = build_report(self.options.data, night)
        parts = [", ".join(f"{n} {kind}" for kind, n in sorted(report.get("captured", {}).items())) or "no frames"]
        if report.get("lights"):
            parts.append("lights " + ", ".join(f"{n} {s}" for s, n in sorted(report["lights"].items())))
        parts.append(f"{len(report.get('masters_built', []))} masters built")
        if report.get("closed_up"):
            parts.append(f"closed up {len(report['closed_up'])}x for the weather")
        if report.get("warnings"):
            parts.append(f"{len(report['warnings'])} warnings")
        self.options.notify("night_summary", f"obsagent: night of {night}", "; ".join(parts))

    def _day_clock(self) -> tuple[Clock, Any]:
        """The clock to wait on through the day: the simulator's, followed over INDI, or real time."""
        from agent.devices import IndiClient, parse_address
        from agent.night.runner import pick_clock

        host, port = parse_address(self.options.indi)
        client = IndiClient(host, port)
        client.connect()
        return pick_clock(client), client

    def _wait_until(self, clock: Clock, when: dt.datetime) -> str:
        """Wait on `clock` (fast-forwarded on a simulator): "reached", "stopped", or "replan" when the
        sequence file was reloaded (it may start the night at another time)."""
        forward = getattr(clock, "fast_forward", None)
        fast = self.options.fast_forward if forward is not None else None
        try:
            while not self.stop.is_set():
                if clock.now() >= when:
                    return "reached"
                if fast and forward is not None and clock.time_factor < fast:
                    forward(when, fast)  # (again: a simulator ends a fast-forward at each weather change)
                clock.sleep(min((when - clock.now()).total_seconds(), POLL_S * 5 * clock.time_factor), self.stop)
                self._ping()
                if self.reload.is_set() or self.sequence.changed():
                    self._check_reload()
                    return "replan"
        finally:
            if self.stop.is_set() and self.options.fast_forward and forward is not None:
                with contextlib.suppress(ObsAgentError):
                    forward(None, 1.0)
        return "stopped"

    # ---- housekeeping of the service ------------------------------------------------------------
    def _check_reload(self) -> None:
        if not (self.reload.is_set() or self.sequence.changed()):
            return
        self.reload.clear()
        fresh = self.sequence.reload()
        if fresh is None:
            if self.sequence.refused and self.options.notify is not None:
                self.options.notify("fault", "obsagent: sequence edit refused", self.sequence.refused)
            return
        runner = self.runner
        if runner is not None:
            runner.adopt(fresh)

    def _retry_later(self, why: str, kind: str = "fault") -> None:
        delay = BACKOFF_S[min(self._failures, len(BACKOFF_S) - 1)]
        self._failures += 1
        log.error("%s; trying again in %.0f s", why, delay)
        self._service("status", f"{why}; retrying in {delay:.0f} s")
        if self._failures in (1, 4) and self.options.notify is not None:
            self.options.notify(kind, "obsagent needs a look", f"{why}; retrying every few minutes")
        end = time.monotonic() + delay
        while not self.stop.is_set() and time.monotonic() < end:
            self.stop.wait(min(POLL_S, end - time.monotonic()))
            self._ping()

    def _ping(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= 1.0:
            self._last_ping = now
            self._service("watchdog")

    def _service(self, what: str, text: str | None = None) -> None:
        service = self.options.service
        if service is None:
            return
        try:
            if what == "status":
                service.status(text or "")
            else:
                getattr(service, what)()
        except Exception:  # noqa: BLE001 - systemd's socket gone must not stop the night
            log.debug("service notification %s failed", what, exc_info=True)
