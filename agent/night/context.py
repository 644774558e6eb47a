"""Everything a state's activity needs for one night, in one place."""

from __future__ import annotations

import datetime as dt
import errno
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.clock import Clock
from agent.config import Sequence
from agent.devices.frame import Frame
from agent.devices.rig import Rig
from agent.fitsfile import write_fits_atomic
from agent.library.captures import capture_path
from agent.night.progress import ProgressStore, RunProgress

if TYPE_CHECKING:
    from agent.library.store import Library
    from agent.night.live import LiveStatus
    from agent.night.safety import SafetyGate, SkyStop
    from agent.night.services import LightCalibrator, MasterBuilder, Uploads
from agent.planner import NightPlan

log = logging.getLogger(__name__)


class Aborted(Exception):
    """The night was asked to stop (SIGTERM, safety); activities unwind through this."""


class SkyClosed(Exception):
    """The sky may not be used now (unsafe weather, the hysteresis, clouds, a full disk): the sky
    activity unwinds through this and the runner closes up."""


@dataclass
class NightContext:
    seq: Sequence
    plan: NightPlan
    rig: Rig
    clock: Clock
    library: Library
    data_dir: Path
    progress: RunProgress
    progress_store: ProgressStore
    abort: threading.Event = field(default_factory=threading.Event)
    cooler_ok: bool = True
    set_point: float | None = None
    cooler_resting: bool = False  # off after the day's darks, until the cooling lead before the night
    calibrator: LightCalibrator | None = None  # calibrates lights off the capture thread
    builder: MasterBuilder | None = None  # stacks masters in a worker process
    sync: Uploads | None = None  # uploads new masters in the background
    status: dict[str, Any] = field(default_factory=dict)
    paused: bool = False  # the dashboard asked: no new exposure until resumed
    live: LiveStatus | None = None  # the status file the dashboard reads
    between_frames: Callable[[], None] | None = None  # the dashboard's requests, handled between frames
    safety: SafetyGate | None = None  # weather, clouds and disk: may the sky be used now?
    sky_stop: SkyStop | None = None  # the camera's stop signal (stop request, or unsafe while open)
    notify: Callable[[str, str, str], None] | None = None  # (kind, title, body) to a person
    alarm: threading.Event = field(default_factory=threading.Event)  # wakes naps: unsafe, a stop

    @property
    def night(self) -> str:
        return self.progress.night

    @property
    def night_dir(self) -> Path:
        return self.data_dir / "frames" / self.night

    def now(self) -> dt.datetime:
        return self.clock.now()

    def check_abort(self) -> None:
        if self.abort.is_set():
            raise Aborted("stop requested")

    def check_sky(self) -> None:
        """Raise `SkyClosed` when the sky may not be used now (asked before every sky frame)."""
        self.check_abort()
        if self.safety is not None:
            reason = self.safety.hold_reason(self.now())
            if reason is not None:
                raise SkyClosed(reason)

    def sleep_until(self, when: dt.datetime, step: float = 60.0, alarm: bool = False) -> bool:
        """Sleep (clock time) until `when`, waking at least every `step` s; False if aborted.

        With `alarm`, the nap also ends early (True) when the weather turns unsafe."""
        while not self.abort.is_set():
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return True
            if alarm and self.safety is not None and self.safety.unsafe.is_set() and not self.safety.closed_up:
                return True  # unsafe and still open: wake the runner to close up
            if not self.clock.sleep(min(remaining, step), self.alarm):
                if self.abort.is_set():
                    return False
                self.alarm.clear()
                if alarm:
                    return True
            self.frame_done()
        return False

    def tell(self, kind: str, title: str, body: str) -> None:
        """A message for a person (notifications), when the sequence asks for them."""
        if self.notify is not None:
            try:
                self.notify(kind, title, body)
            except Exception:  # noqa: BLE001 - a notifier must never stop the night
                log.exception("notification failed")

    def frame_done(self) -> None:
        """Between two frames (or two naps): the dashboard's requests are handled here."""
        if self.between_frames is not None:
            self.between_frames()

    def live_status(self, **changes: Any) -> None:
        if self.live is not None:
            for name, value in changes.items():
                setattr(self.live.status, name, value)
            self.live.write(force=True)

    def note(self, kind: str, text: str) -> None:
        level = logging.WARNING if kind == "warning" else logging.INFO
        log.log(level, "%s", text)
        self.progress.note(self.now(), kind, text)
        self.progress_store.save(self.progress)
        if kind == "warning" and self.live is not None:
            self.live.warn(text)

    # ---- frames ------------------------------------------------------------------------------
    def frame_path(
        self,
        frame_type: str,
        exposure: float,
        index: int,
        filter_name: str | None = None,
        target: str | None = None,
    ) -> Path:
        return capture_path(self.night_dir, frame_type, exposure, index, filter_name, target)

    def count_frames(
        self,
        frame_type: str,
        exposure: float | None,
        filter_name: str | None = None,
        target: str | None = None,
    ) -> int:
        """Frames of this kind captured tonight, counted by the library (never from memory)."""
        return self.library.count_captured(self.night_dir, frame_type, exposure, filter_name, target)

    def store_frame(
        self,
        frame: Frame,
        frame_type: str,
        exposure: float,
        filter_name: str | None = None,
        target: str | None = None,
    ) -> Path:
        """Write the frame atomically, then commit its library row; return the path."""
        index = self.count_frames(frame_type, exposure, filter_name, target) + 1
        path = self.frame_path(frame_type, exposure, index, filter_name, target)
        while path.exists():  # an orphan from a crash: ingest it and move on
            self.library.ingest_file(path)
            index += 1
            path = self.frame_path(frame_type, exposure, index, filter_name, target)
        if target:
            frame.header["OBJECT"] = target
        if not self.library.db_path.exists():  # the disk went during the exposure
            from agent.night.housekeeping import data_gone

            raise data_gone(self)
        try:
            write_fits_atomic(path, frame.data, frame.header)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            from agent.night.housekeeping import DiskLow

            raise DiskLow(f"disk full writing {path.name} in {self.data_dir}; this frame is lost, "
                          "capture waits for free space") from exc
        result = self.library.ingest_file(path)
        if getattr(result, "status", "added") == "quarantined":
            self.note("warning", f"{path.name} was quarantined: {result.reason}")
        if self.live is not None:
            self.live.frame(path, frame_type, target=target, filter=filter_name, exposure=exposure)
            self.live.cooler(self)
        return path
