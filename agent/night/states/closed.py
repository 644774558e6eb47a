"""Closed: the sky may not be used. Close up, then turn the time into cap-closed calibration.

Unsafe weather (or a reading grown stale) closes the cap and parks the mount at once; clouds seen
in our own lights close the cap for a pause; a full disk only waits. While closed, the library's
needs ledger picks the darks, bias and dark flats the lights need (their configurations first),
until the sky may be used again — safe for the whole hysteresis — or the night moves on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re

from agent.errors import IndiError
from agent.night.closeup import close_up_if_unsafe
from agent.night.context import NightContext
from agent.night.dispatch import Due, due
from agent.night.housekeeping import DiskLow, space_problem
from agent.night.states.calibration import capture_jobs, must_close_up

SKY_ACTIVITIES = {"dusk_flats", "imaging", "dawn_flats"}
CAPTURING = SKY_ACTIVITIES | {"gap_calibration", "morning_calibration", "day_calibration", "panel_flats"}
NAP = dt.timedelta(minutes=60)  # the gate wakes a nap when the weather turns either way
DISK_NAP = dt.timedelta(minutes=5)  # nothing wakes a nap when space returns: look again this often


def route(ctx: NightContext, now_due: Due) -> str:
    """The activity to run: what is due, unless the sky is closed for it, the disk has no room for
    its frames, or the rig must close up."""
    gate = ctx.safety
    if gate is None:
        return now_due.activity
    if must_close_up(ctx):
        return "closed"
    if now_due.activity in CAPTURING and gate.disk_low:
        return "closed"
    if now_due.activity in SKY_ACTIVITIES and not gate.sky_ok(ctx.now()):
        return "closed"
    return now_due.activity


def _held(ctx: NightContext, activity: str) -> bool:
    """Does the hold still apply to what is due?"""
    gate = ctx.safety
    assert gate is not None
    if activity in CAPTURING and gate.disk_low:
        return True
    return activity in SKY_ACTIVITIES and not gate.sky_ok(ctx.now())


def run(ctx: NightContext) -> str:
    gate = ctx.safety
    if gate is None:
        return "dispatch"
    announced: str | None = None
    while True:
        ctx.check_abort()
        close_up_if_unsafe(ctx)
        problem = space_problem(ctx)
        if problem is not None and not gate.disk_low:
            ctx.tell("disk_low", "obsagent: disk low", problem)
        gate.set_disk_low(problem)
        now = ctx.now()
        now_due = due(ctx)
        if not _held(ctx, now_due.activity):
            return "dispatch"
        reason = gate.hold_reason(now) or "closed"
        ctx.status.update(activity="closed", hold=reason)
        kind = re.sub(r"[\d:.]+", "N", reason)  # "waiting for 7 min" is the same news as "for 10 min"
        if kind != announced and not reason.startswith("unsafe"):
            ctx.note("warning" if problem else "info", f"sky closed: {reason}" if not problem else reason)
        announced = kind
        nap_for = DISK_NAP if problem else NAP
        wake = min(m for m in (now_due.until, gate.resume_at(), now + nap_for) if m is not None)
        if problem is None:
            keep_going = lambda: _still_closed(ctx)  # noqa: E731
            try:
                all_done = capture_jobs(ctx, now_due.until, keep_going=keep_going) == "done"
            except DiskLow:
                continue  # the frame would not fit: the disk hold takes over
            if not all_done and not keep_going():
                continue  # stopped to close up, or the sky may be used again: decide afresh
        nap(ctx, max(wake, ctx.now() + dt.timedelta(seconds=30)))


def nap(ctx: NightContext, until: dt.datetime) -> None:
    """Sleep while closed; a simulator runs fast meanwhile (it slows down by itself at its next
    weather change), and normal speed is back before anything is done."""
    fast = ctx.status.get("fast_forward")
    forward = getattr(ctx.clock, "fast_forward", None)
    try:
        while ctx.now() < until:
            if fast and forward is not None and ctx.clock.time_factor < float(fast):
                forward(until, float(fast))  # again after each weather change the simulator slowed down for
            step = min(until, ctx.now() + dt.timedelta(seconds=ctx.clock.time_factor))  # about a wall second
            if not ctx.sleep_until(step, alarm=True):
                return  # a stop: the caller's loop raises it
            if ctx.now() < step:
                break  # woken: the weather turned
    finally:
        if fast and forward is not None and ctx.now() < until:
            with contextlib.suppress(IndiError):
                forward(None, 1.0)


def _still_closed(ctx: NightContext) -> bool:
    gate = ctx.safety
    return gate is not None and not must_close_up(ctx) and not gate.sky_ok(ctx.now())
