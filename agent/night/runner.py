"""The runner loop: runs each state's activity and fires the event it returns.

Activities run on one runner thread, which owns the INDI client. The main thread only waits and
handles signals: SIGTERM/SIGINT set the abort event, every wait wakes within half a second, and the
runner makes the hardware safe (exposure aborted, light off, cap closed, tracking off) and exits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from agent.clock import Clock, RealClock
from agent.config import Sequence
from agent.devices import IndiClient, ServerLost, parse_address
from agent.devices.rig import connect_rig
from agent.devices.sim_clock import SimClock
from agent.errors import DeviceMissing, IndiError, ObsAgentError
from agent.night import states
from agent.night.context import Aborted, NightContext, SkyClosed
from agent.night.dispatch import due
from agent.night.housekeeping import DataGone
from agent.night.live import LiveStatus, Requests
from agent.night.machine import DISPATCH_EVENTS, NightModel, build_machine, fire
from agent.night.progress import ProgressStore, RunProgress
from agent.night.states.closed import route
from agent.night.states.common import count_frame_faults
from agent.night.states.safe import run as run_safe
from agent.night.states.shutdown import make_safe
from agent.planner import default_night, plan_night

if TYPE_CHECKING:
    from agent.library.store import Library
    from agent.night.services import UploadsFactory

log = logging.getLogger(__name__)

CLOCK_JUMP_S = 60.0  # a step back in time larger than this is reported

# Activities whose completion is remembered for the night (so a resumed night does not repeat them).
ONCE_PER_NIGHT = {"dusk_flats", "dawn_flats", "panel_flats", "morning_calibration"}


@dataclass
class RunResult:
    night: str
    final_state: str
    aborted: bool
    reason: str | None = None


def pick_clock(client: IndiClient) -> Clock:
    """Follow the simulator's clock when a simulator publishes one, else real time."""
    client.settle(quiet=0.3, timeout=3.0)
    for device in client.devices():
        if client.has(device, SimClock.PROPERTY):
            if client.has(device, "CONNECTION"):
                client.connect_device(device)
            return SimClock(client, device)
    return RealClock()


class NightRunner:
    def __init__(
        self,
        seq: Sequence,
        data_dir: Path,
        indi: str | None = None,
        library: Library | None = None,
        night: dt.date | None = None,
        on_status: Any = None,
        uploads: UploadsFactory | None = None,
        notify: Any = None,
    ) -> None:
        self.seq = seq
        self.data_dir = data_dir
        self.indi = indi or seq.indi.address
        self.abort = threading.Event()
        self.library = library
        self.night_date = night
        self.on_status = on_status
        self.uploads = uploads
        self.notify = notify  # (kind, title, body) to a person, or None
        self.data_gone = False
        self.ctx: NightContext | None = None
        self.result: RunResult | None = None
        self.fast_forward: float | None = None  # simulator only: speed while nothing is due
        self.requests: Requests | None = None
        self.stop_reason: str | None = None  # why a stop was requested (signal, dashboard)
        self._last_clock: dt.datetime | None = None
        self._pending_seq: Sequence | None = None
        self._logged_state: str | None = None

    def adopt(self, seq: Sequence) -> None:
        """A reloaded sequence file (any thread): tonight's plan is redone at the next activity."""
        self._pending_seq = seq
        if self.ctx is not None:
            self.ctx.alarm.set()

    def _apply_pending(self, ctx: NightContext) -> None:
        seq, self._pending_seq = self._pending_seq, None
        if seq is None or seq == ctx.seq:
            return
        rig_changed = (seq.indi, seq.camera, seq.site, seq.filters) != (
            ctx.seq.indi, ctx.seq.camera, ctx.seq.site, ctx.seq.filters
        )
        if rig_changed:
            ctx.note("warning", "the sequence file changed the rig (indi, camera, site or filters): "
                     "that takes effect from the next night; tonight goes on as planned")
            return
        self.seq = ctx.seq = seq
        ctx.plan = plan_tonight(seq, dt.date.fromisoformat(ctx.night), ctx.library)
        if ctx.live is not None:
            ctx.live.status.plan = ctx.plan.to_dict()
        ctx.note("info", "sequence file reloaded: tonight's plan redone")

    # ---- signals ---------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        log.warning("%s: aborting the night safely", reason)
        self.stop_reason = self.stop_reason or reason
        self.abort.set()
        if self.ctx is not None:
            self.ctx.alarm.set()
            self.ctx.rig.client.wake()

    def run_in_thread(self) -> RunResult:
        """Run on a runner thread; the calling (main) thread handles SIGTERM/SIGINT."""
        errors: list[BaseException] = []

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                errors.append(exc)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.request_stop(signal.Signals(signum).name)

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        worker = threading.Thread(target=target, name="night-runner", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
        if errors:
            raise errors[0]
        assert self.result is not None
        return self.result

    # ---- the night --------------------------------------------------------------------------
    def _open(self) -> NightContext:
        from agent.library.store import Library

        host, port = parse_address(self.indi)
        client = IndiClient(host, port)
        client.connect()
        names = self.seq.indi.devices
        rig = connect_rig(
            client,
            camera=names.camera,
            wheel=names.wheel,
            panel=names.flat_panel,
            mount=names.mount,
            need_wheel=len(self.seq.filters) > 1,
            dust_cap=names.dust_cap,
        )
        clock = pick_clock(client)
        rig.camera.time_factor = clock.time_factor
        library = self.library or Library.open(self.data_dir)
        from agent.library.keys import SensorKind

        library.set_camera_kind(rig.camera.name, SensorKind(self.seq.camera.sensor))
        night = self.night_date or default_night(self.seq.site.zone, clock.now())
        plan = plan_tonight(self.seq, night, library)
        store = ProgressStore(self.data_dir)
        progress = store.load(night.isoformat())
        if progress is None:
            progress = RunProgress(night=night.isoformat(), started=clock.now().isoformat(timespec="seconds"))
        elif progress.state != "done":
            progress.resumed += 1
        ctx = NightContext(
            seq=self.seq,
            plan=plan,
            rig=rig,
            clock=clock,
            library=library,
            data_dir=self.data_dir,
            progress=progress,
            progress_store=store,
            abort=self.abort,
        )
        ctx.notify = self.notify
        ctx.live = LiveStatus(self.data_dir, progress.night, plan.to_dict())
        self.requests = Requests(ctx, self.request_stop)
        ctx.between_frames = self.requests.handle
        rig.camera.on_fault = count_frame_faults(ctx)
        if self.fast_forward and isinstance(clock, SimClock):
            ctx.status["fast_forward"] = self.fast_forward
        from agent.night.services import attach_services

        attach_services(ctx, self.uploads)
        from agent.night.safety import open_gate

        open_gate(ctx)  # last: an unsafe first reading is closed up for by the loop's first step
        if progress.resumed:
            ctx.note("info", f"resuming the night of {progress.night} (was in {progress.state})")
        store.save(progress)
        return ctx

    def _record_state(self, state: str) -> None:
        ctx = self.ctx
        if ctx is None:
            return
        ctx.progress.state = state
        ctx.progress.updated = ctx.now().isoformat(timespec="seconds")
        if state != self._logged_state:
            log.info("night %s: %s at %s UTC", ctx.night, state, ctx.progress.updated[11:19])
            self._logged_state = state
        ctx.progress_store.save(ctx.progress)
        ctx.status["state"] = state
        if ctx.live is not None:
            ctx.live.state(state, ctx.status)
        if self.on_status:
            self.on_status(ctx)

    def run(self) -> RunResult:
        ctx = self._open()
        self.ctx = ctx
        model = NightModel(is_safe=lambda: not self.abort.is_set(), on_state=self._record_state)
        initial = "done" if ctx.progress.state == "done" else "startup"
        build_machine(model, initial=initial)
        reason: str | None = None
        try:
            if ctx.safety is not None:
                ctx.safety.rig_back = ctx.now()  # the rig is ours from here: nothing could move before
            while model.state != "done":
                if self.abort.is_set():
                    raise Aborted("stop requested")
                if model.state != "safe":
                    self._close_up_first(ctx)  # first, before a reload or a pause: a night that begins unsafe too
                self._apply_pending(ctx)
                ctx.frame_done()  # the dashboard's requests (a pause waits here)
                if self.abort.is_set():
                    raise Aborted("stop requested")
                self._watch_clock(ctx)
                event = self._step(ctx, model.state)
                if event == "dispatch":
                    event = DISPATCH_EVENTS[route(ctx, due(ctx))]
                if not fire(model, event):
                    if self.abort.is_set():
                        raise Aborted("stop requested")
                    raise ObsAgentError(f"the night cannot go from {model.state} on {event}")
                if ctx.builder is not None:
                    ctx.builder.poll()
        except Aborted as exc:
            reason = self.stop_reason if self.abort.is_set() and self.stop_reason else str(exc)
            failures = make_safe(ctx) if ctx.rig.client.connected else ["not connected"]
            if self.requests is not None and self.requests.park_requested and ctx.rig.mount is not None and ctx.rig.client.connected:
                try:
                    ctx.rig.mount.park()
                except IndiError as exc:
                    failures.append(f"park: {exc}")
            ctx.note(
                "warning" if failures else "info",
                f"stopped ({reason}); hardware made safe" + (f" except: {failures}" if failures else ""),
            )
            if ctx.live is not None:
                ctx.live.status.paused = False
                ctx.live.state("stopped", {"reason": reason})
        finally:
            if ctx.safety is not None:
                ctx.safety.stop()
            if model.state != "done" and not self.abort.is_set() and not self.data_gone:
                self._build_anyway(ctx)
            if ctx.calibrator is not None:
                ctx.calibrator.close()
            if ctx.builder is not None:
                ctx.builder.close()
            if ctx.sync is not None:
                ctx.sync.stop()
            ctx.rig.client.disconnect()
        self.result = RunResult(ctx.night, model.state, aborted=reason is not None, reason=reason)
        return self.result

    def _watch_clock(self, ctx: NightContext) -> None:
        """A clock that jumps back (a restarted simulator, a corrected system clock) is said in the report."""
        now = ctx.now()
        last = self._last_clock
        self._last_clock = now
        if last is not None and (last - now).total_seconds() > CLOCK_JUMP_S:
            back = last - now
            ctx.progress.record_fault("clock went back")
            ctx.note(
                "warning",
                f"the clock went back by {back} (from {last:%Y-%m-%d %H:%M:%S} to {now:%H:%M:%S} UTC); "
                "the plan and the windows follow the new time",
            )

    def _close_up_first(self, ctx: NightContext) -> None:
        """Unsafe weather is closed up for before any activity (startup and cooling included)."""
        from agent.night.closeup import close_up_if_unsafe

        with contextlib.suppress(ServerLost, DeviceMissing):  # the activity meets it and reconnects
            close_up_if_unsafe(ctx)

    def _build_anyway(self, ctx: NightContext) -> None:
        """The night ended early (hardware gone): masters that are ready are still built."""
        from agent.night.services import finish_masters

        try:
            finish_masters(ctx)
        except Exception as exc:  # noqa: BLE001 - the night is over; say why, never crash here
            log.error("building masters after the night failed:\n%s", traceback.format_exc())
            ctx.note("warning", f"masters not built after the night: {exc!r}")

    def _step(self, ctx: NightContext, state: str) -> str:
        """Run one activity; faults become events (safe/recovered) or skips, never a crash."""
        if state == "safe":
            return run_safe(ctx)
        activity = states.ACTIVITIES[state]
        ctx.status["activity"] = state
        try:
            event = activity(ctx)
        except Aborted:
            raise
        except SkyClosed:
            return "close_up"  # the closed state closes up, or holds for the disk
        except DataGone as exc:
            self.data_gone = True
            ctx.progress.record_fault("data folder gone")
            ctx.tell("fault", "obsagent: data folder gone", str(exc))
            raise Aborted(str(exc)) from exc
        except (ServerLost, DeviceMissing) as exc:  # the rig is gone: make it safe, then reconnect
            if self.abort.is_set():
                raise Aborted("stop requested") from exc
            lost = isinstance(exc, ServerLost)
            ctx.progress.record_fault("server lost" if lost else "device missing")
            ctx.note("warning", f"{exc}" if lost else f"{state}: {exc}")
            return "make_safe"
        except IndiError as exc:
            if self.abort.is_set():
                raise Aborted("stop requested") from exc
            if ctx.safety is not None and ctx.safety.unsafe.is_set():
                return "close_up"  # the weather stopped it (a sky flat aborted): close up, retry later
            ctx.progress.record_fault(f"{state} skipped")
            ctx.note("warning", f"{state} skipped: {exc}")
            self._finish(ctx, state)
            return "connected" if state == "startup" else "dispatch"  # startup's only way on is cooling
        except Exception as exc:  # a bug must not leave the hardware open
            log.error("%s failed:\n%s", state, traceback.format_exc())
            ctx.progress.record_fault("unexpected error")
            ctx.note("warning", f"{state} failed: {exc!r}")
            return "make_safe"
        if state in ONCE_PER_NIGHT:
            self._finish(ctx, state)
        return event

    def _finish(self, ctx: NightContext, state: str) -> None:
        """Remember that an activity is done (or skipped) for tonight's window so dispatch moves on."""
        from agent.night.dispatch import active_block, active_gap, block_key, gap_key, mark_finished

        key: str | None = state
        if state == "gap_calibration":
            gap = active_gap(ctx, ctx.now())
            key = gap_key(gap) if gap else None
        elif state == "imaging":
            block = active_block(ctx, ctx.now())
            key = block_key(block) if block else None
        if key:
            mark_finished(ctx, key)


def plan_tonight(seq: Sequence, night: dt.date, library: Library) -> Any:
    """Tonight's plan for what the campaign still needs (finished entries are left out)."""
    from agent.library.queries.campaign import campaign_progress

    return plan_night(seq, night, progress=campaign_progress(library, seq, night))


def run_night(
    seq: Sequence, data_dir: Path, indi: str | None = None, night: dt.date | None = None
) -> RunResult:
    return NightRunner(seq, data_dir, indi=indi, night=night).run_in_thread()


__all__ = ["NightRunner", "RunResult", "run_night"]
