"""Closing up for bad weather: stop the exposure, light off, cap and mount moving at once.

Every step is timed on the night's clock and kept in the night's progress, so the morning report
(and the tests) can show how fast the rig was safe after the sky turned unsafe.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.devices import ServerLost
from agent.errors import DeviceMissing, IndiError
from agent.night.context import NightContext

log = logging.getLogger(__name__)


def close_up(ctx: NightContext, reason: str, park: bool = True) -> dict[str, Any]:
    """Abort, light off, cap closed and (when `park`) mount parked; returns the timed record."""
    rig = ctx.rig
    start = ctx.now()
    record: dict[str, Any] = {"at": start.isoformat(timespec="milliseconds"), "reason": reason}
    seen = ctx.safety.seen_unsafe_at(ctx.clock.time_factor) if ctx.safety is not None else None
    if seen is not None:  # the times below count from this reading, not from when we got to it
        record["unsafe_seen"] = seen.isoformat(timespec="milliseconds")
        back = ctx.safety.rig_back if ctx.safety is not None else None
        if back is not None and back > seen:  # seen while the server was away: count from its return
            record["rig_back"] = back.isoformat(timespec="milliseconds")
            seen = back
        start = min(start, seen)
    failures: list[str] = []

    def elapsed() -> float:
        return round((ctx.now() - start).total_seconds(), 2)

    def attempt(what: str, step: Any) -> Any:
        try:
            return step()
        except (IndiError, OSError) as exc:
            failures.append(f"{what}: {exc}")
            return None

    attempt("abort exposure", rig.camera.abort)
    record["aborted_s"] = elapsed()
    panel = rig.panel
    if panel is not None:
        attempt("light off", lambda: panel.light(False) if panel.light_on() else None)
    cap_base = None
    if panel is not None and panel.has_cap and panel.cap_closed() is not True:
        cap_base = attempt("close cap", panel.start_close)
    mount = rig.mount
    park_base = None
    if park and mount is not None:
        if rig.client.has(mount.name, "TELESCOPE_PARK") and not mount.parked():
            park_base = attempt("park", mount.start_park)
            record["park_started_s"] = elapsed()
        else:
            attempt("tracking off", lambda: mount.set_tracking(False))
    if cap_base is not None and panel is not None:
        attempt("close cap", lambda: panel.wait_closed(cap_base))
    if panel is not None and panel.has_cap:
        record["cap_closed_s"] = elapsed() if panel.cap_closed() is True else None
    if park_base is not None and mount is not None:
        attempt("park", lambda: mount.wait_parked(park_base))
        record["parked_s"] = elapsed() if mount.parked() else None
    if failures:
        record["failures"] = failures
    if ctx.sky_stop is not None:
        ctx.sky_stop.covered = panel is not None and panel.has_cap and panel.cap_closed() is True
    ctx.progress.safety.append(record)
    ctx.progress_store.save(ctx.progress)
    done = [f"exposure stopped in {record['aborted_s']:.1f} s"]
    if record.get("cap_closed_s") is not None:
        done.append(f"cap closed in {record['cap_closed_s']:.1f} s")
    if record.get("parked_s") is not None:
        done.append(f"mount parked in {record['parked_s']:.1f} s")
    ctx.note("warning", f"{reason}: " + ", ".join(done) + (f"; failed: {failures}" if failures else ""))
    return record


def mark_reopened(ctx: NightContext) -> None:
    """The sky is used again: the last close-up gets its reopening time (the hysteresis is checked on it)."""
    if ctx.progress.safety and "reopened" not in ctx.progress.safety[-1]:
        record = ctx.progress.safety[-1]
        record["reopened"] = ctx.now().isoformat(timespec="seconds")
        safe_since = ctx.safety.safe_since if ctx.safety is not None else None
        if safe_since is not None:
            record["safe_since"] = safe_since.isoformat(timespec="seconds")
        ctx.progress_store.save(ctx.progress)


def close_up_if_unsafe(ctx: NightContext) -> None:
    """Unsafe and not closed up yet: close up now (cap, park) and tell a person."""
    gate = ctx.safety
    if gate is None or not gate.unsafe.is_set() or gate.closed_up:
        return
    if not ctx.rig.client.connected:  # nothing can move: the lost server is the runner's to handle
        raise ServerLost(f"not connected to the INDI server at {ctx.rig.client.address}")
    present = set(ctx.rig.client.devices())
    gone = [d.name for d in (ctx.rig.camera, ctx.rig.panel) if d is not None and d.name not in present]
    if gone:  # a crashed driver: the runner reconnects the rig, then closes up (counted from its return)
        raise DeviceMissing(f"{', '.join(gone)} gone from {ctx.rig.client.address} (driver exited?)")
    reason = gate.hold_reason() or "unsafe"
    close_up(ctx, reason, park=True)
    gate.closed_up = True
    ctx.progress.last_unsafe = (gate.last_unsafe or ctx.now()).isoformat(timespec="seconds")
    ctx.progress_store.save(ctx.progress)
    ctx.tell("unsafe", "obsagent: closed up", f"{reason}; cap closed and mount parked; resuming when safe")
