"""Waiting: nothing is due; sleep on the clock until the next window opens (abortable).

With a simulator that offers it, idle time is fast-forwarded up to the next window; the simulator
falls back to its normal speed by itself at that instant, so a crash here cannot leave it racing.
"""

from __future__ import annotations

import contextlib

from agent.errors import IndiError
from agent.night.context import Aborted, NightContext
from agent.night.dispatch import due


def run(ctx: NightContext) -> str:
    now_due = due(ctx)
    until = now_due.until
    if now_due.activity != "waiting" or until is None:
        return "dispatch"  # something is due already (e.g. right after cooling down)
    fast = ctx.status.get("fast_forward")
    forward = getattr(ctx.clock, "fast_forward", None)
    if fast and forward is not None:
        forward(until, float(fast))
    woke_early = False
    try:
        if not ctx.sleep_until(until, alarm=True):
            raise Aborted("stop requested")
        woke_early = ctx.now() < until  # the weather turned: back to normal speed to close up
    finally:
        if fast and forward is not None and (ctx.abort.is_set() or woke_early):
            with contextlib.suppress(IndiError):
                forward(None, 1.0)
    return "dispatch"
