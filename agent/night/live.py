"""What the night shows and what it is asked: the live status file and the dashboard's requests.

The night writes `<data>/status.json` (agent.status) when its state changes, after every frame and
once a minute for the cooler; it reads the control inbox (agent.control) between frames, so a
pause, a park or a forced master build never waits for the end of a block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.control import ControlRequest, mark_done, pending_requests
from agent.errors import IndiError, ObsAgentError
from agent.status import NightStatus, write_status

if TYPE_CHECKING:
    from agent.night.context import NightContext

log = logging.getLogger(__name__)

REQUEST_MAX_AGE_S = 600.0  # a request nobody handled for ten minutes (no agent ran) is not acted on later
MIN_WRITE_S = 1.0  # the dashboard needs no more than one update a second
COOLER_EVERY_S = 60.0  # clock seconds between cooler samples


class LiveStatus:
    """The status file of one night, written atomically and at most once a second."""

    def __init__(self, data_dir: Path, night: str, plan: dict[str, Any] | None) -> None:
        self.data_dir = data_dir
        self.status = NightStatus(night=night, plan=plan)
        self._written = 0.0
        self._cooler_at: float | None = None

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < MIN_WRITE_S:
            return
        self._written = now
        if not self.data_dir.is_dir():
            return  # a pulled disk: never make the folder again on the disk it was mounted over
        try:
            write_status(self.data_dir, self.status)
        except OSError as exc:  # a status file must never stop the night
            log.warning("status file not written: %s", exc)

    def state(self, state: str, detail: dict[str, Any]) -> None:
        self.status.state = state
        safe = {k: v for k, v in detail.items() if isinstance(v, str | int | float | bool) or v is None}
        self.status.detail = safe
        self.status.activity = describe(state, safe)
        self.write(force=True)

    def frame(self, path: Path, frame_type: str, **info: Any) -> None:
        self.status.record_frame(path, frame_type, **info)
        self.write(force=True)  # the last frame is what a person looks for; never held back

    def cooler(self, ctx: NightContext) -> None:
        """One sample a minute of clock time: the sensor against its set-point."""
        now = ctx.now().timestamp()
        if self._cooler_at is not None and now - self._cooler_at < COOLER_EVERY_S:
            return
        self._cooler_at = now
        try:
            temperature = ctx.rig.camera.temperature()
        except IndiError:
            return
        self.status.record_cooler(temperature, ctx.set_point, when=ctx.now())

    def warn(self, text: str) -> None:
        self.status.warn(text)
        self.write()


def describe(state: str, detail: dict[str, Any]) -> str:
    """One line a person reads: "imaging M 42, L, 12 left"."""
    words = state.replace("_", " ")
    parts = [str(detail[k]) for k in ("target", "filter", "frame_type") if detail.get(k)]
    if detail.get("exposure"):
        parts.append(f"{float(detail['exposure']):g} s")
    if detail.get("remaining") is not None:
        parts.append(f"{detail['remaining']} left")
    return words + (": " + ", ".join(parts) if parts else "")


class Requests:
    """The dashboard's requests, handled between frames on the runner thread."""

    def __init__(self, ctx: NightContext, stop: Callable[[str], None]) -> None:
        self.ctx = ctx
        self.stop = stop
        self.park_requested = False

    def handle(self) -> None:
        """Act on every pending request; while paused, wait here (requests still handled)."""
        self._handle_pending()
        ctx = self.ctx
        while ctx.paused and not ctx.abort.is_set():
            ctx.clock.sleep(1.0 * ctx.clock.time_factor, ctx.abort)
            self._handle_pending()

    def _handle_pending(self) -> None:
        try:
            requests = pending_requests(self.ctx.data_dir)
        except OSError as exc:
            log.warning("control inbox unreadable: %s", exc)
            return
        for request in requests:
            try:
                if time.time() - request.requested_at > REQUEST_MAX_AGE_S:
                    ok, message = False, "expired: no night was running to act on it; ask again"
                else:
                    ok, message = self._act(request)
            except (ObsAgentError, OSError, ValueError, KeyError, TypeError) as exc:
                ok, message = False, str(exc)
            self.ctx.note("info" if ok else "warning", f"dashboard asked to {request.action}: {message}")
            try:
                mark_done(self.ctx.data_dir, request.id, ok, message)
            except (ObsAgentError, OSError) as exc:
                log.warning("request %s not marked done: %s", request.id, exc)

    def _act(self, request: ControlRequest) -> tuple[bool, str]:
        ctx = self.ctx
        params = request.params
        if request.action == "pause":
            ctx.paused = True
            ctx.live_status(paused=True)
            return True, "paused after the current frame"
        if request.action == "resume":
            ctx.paused = False
            ctx.live_status(paused=False)
            return True, "resumed"
        if request.action == "park":
            self.park_requested = True
            ctx.paused = False
            self.stop("park requested from the dashboard")
            return True, "stopping: exposure aborted, cap closed, light off, mount parked"
        if request.action == "recalibrate_light":
            path = ctx.library.frame_path(int(params["frame_id"]))
            if path is None or ctx.calibrator is None:
                return False, f"no light #{params['frame_id']} to calibrate"
            ctx.calibrator.submit(path)
            return True, f"{path.name} queued for calibration"
        if request.action == "build_master":
            from agent.library.build_plan import schedule_group
            from agent.library.keys import ConfigKey
            from agent.library.policy import library_policy

            raw = params["key"]
            key = ConfigKey.from_row(raw, temperature=raw.get("temperature"))
            job = schedule_group(ctx.library, library_policy(ctx.seq), key)
            if isinstance(job, str):
                return False, job
            if ctx.builder is not None:
                ctx.builder.poll()
            return True, f"build job #{job} queued for the {key.frame_type.value} master of {key.describe()}"
        return False, f"unknown action {request.action!r}"
