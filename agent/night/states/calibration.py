"""Cap-closed calibration: darks, bias and dark flats by the library's needs, in urgency order.

In a gap between targets it runs until the gap ends; in the morning it runs until nothing is
missing, then builds the masters that are ready and calibrates the lights still waiting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal

from agent.devices import ServerLost
from agent.errors import DeviceMissing, IndiError
from agent.night.closeup import close_up_if_unsafe
from agent.night.context import NightContext
from agent.night.dispatch import active_gap, cooling_starts, gap_key, mark_finished, night_begins
from agent.night.services import dark_jobs, finish_masters
from agent.night.states.common import capture, close_cap_for_darks

REST_AT_LEAST = dt.timedelta(minutes=30)  # a shorter pause is not worth warming the sensor for


def must_close_up(ctx: NightContext) -> bool:
    """Unsafe and not closed up yet: calibration stops so the runner closes up (the mount parks)."""
    gate = ctx.safety
    return gate is not None and gate.unsafe.is_set() and not gate.closed_up


Outcome = Literal["done", "out_of_time", "stopped"]


def capture_jobs(
    ctx: NightContext, until: dt.datetime | None, keep_going: Callable[[], bool] | None = None
) -> Outcome:
    """Capture what is missing: "done" when nothing is left (or nothing can be taken), "out_of_time"
    when the next frame would not end before `until`, "stopped" when `keep_going` said stop (the
    weather turned, the sky opened again)."""
    keep_going = keep_going or (lambda: not must_close_up(ctx))
    if not ctx.cooler_ok and ctx.seq.camera.set_point is not None:
        ctx.note("warning", "darks, bias and dark flats skipped: the sensor is not at its set-point")
        return "done"
    if not close_cap_for_darks(ctx):
        ctx.note("warning", "no dust cap to close: darks need the telescope covered, so none are taken")
        return "done"
    taken: dict[tuple[str, float, str | None], int] = {}
    first_count: dict[tuple[str, float, str | None], int] = {}
    while True:
        ctx.check_abort()
        if not keep_going():
            return "stopped"
        jobs = [
            j
            for j in dark_jobs(ctx)
            if taken.get((j.frame_type, j.exposure, j.readout_mode), 0)
            <= first_count.get((j.frame_type, j.exposure, j.readout_mode), j.count)
        ]
        if not jobs:
            return "done"
        job = jobs[0]
        ident = (job.frame_type, job.exposure, job.readout_mode)
        first_count.setdefault(ident, job.count)
        if taken.get(ident, 0) >= first_count[ident]:
            ctx.note(
                "warning",
                f"{job.frame_type} {job.exposure:g}s: frames taken do not count towards the "
                "need (configuration mismatch?); moving on",
            )
            taken[ident] = first_count[ident] + 1
            continue
        taken[ident] = taken.get(ident, 0) + 1
        ctx.status.update(
            activity="calibration", frame_type=job.frame_type, exposure=job.exposure, remaining=job.count
        )
        if until is not None and (until - ctx.now()).total_seconds() < job.exposure + 5:
            return "out_of_time"
        capture(ctx, job.frame_type, job.exposure, readout_mode=job.readout_mode)
        if ctx.builder is not None:
            ctx.builder.poll()


def run_gap(ctx: NightContext) -> str:
    gap = active_gap(ctx, ctx.now())
    if gap is None:
        return "dispatch"
    if capture_jobs(ctx, gap.end) != "stopped":  # all taken, or too little time left for the next frame
        mark_finished(ctx, gap_key(gap))
    return "dispatch"


def run_day(ctx: NightContext) -> str:
    """The day before the night (`darks.by_day`): tonight's missing darks, bias and dark flats behind
    the closed cap until the night begins; then the masters that are ready are built."""
    if capture_jobs(ctx, night_begins(ctx)) != "stopped":  # stopped only to close up: resumed after it
        mark_finished(ctx, "day_calibration")
        finish_masters(ctx)  # tonight's lights find their masters ready
        rest_the_cooler(ctx)
    return "dispatch"


def rest_the_cooler(ctx: NightContext) -> bool:
    """The day's darks are done hours before the night: the cooler need not hold the set-point
    through a warm afternoon. It is switched off and cooled again `schedule.cooldown_lead` before
    the night (the dispatcher's `cooldown`). True when it rests."""
    cam = ctx.rig.camera
    again = cooling_starts(ctx)
    if ctx.seq.camera.set_point is None or again - ctx.now() <= REST_AT_LEAST:
        return False
    if not ctx.rig.client.has(cam.name, "CCD_COOLER"):
        return False  # a set-point without a cooler switch (writable CCD_TEMPERATURE alone) holds it
    ctx.cooler_resting = True  # first: a switch that times out after acting is still cooled again
    cam.set_cooler(False)
    ctx.note("info", f"the day's darks are done: cooler off until {again:%H:%M} UTC")
    return True


def run_morning(ctx: NightContext) -> str:
    """Missing darks, bias and dark flats; then the masters, whatever happened to the capture."""
    try:
        while capture_jobs(ctx, None) != "done":  # stopped only to close up for the weather: then go on
            close_up_if_unsafe(ctx)
    except (ServerLost, DeviceMissing):
        raise  # the rig is gone: the runner makes it safe; the masters are built at the end regardless
    except IndiError as exc:
        ctx.note("warning", f"morning calibration frames stopped: {exc}; building what is ready")
    finish_masters(ctx)
    return "dispatch"
