"""Waiting: nothing is due; sleep on the clock until the next window opens (abortable).

With a simulator that lets us, idle time is fast-forwarded (a demo night need not wait hours).
"""

from __future__ import annotations

from agent.sequencer.context import Aborted, NightContext
from agent.sequencer.dispatch import due


def run(ctx: NightContext) -> str:
    until = due(ctx).until
    if until is None:
        return "dispatch"
    fast = ctx.status.get("fast_forward")
    normal = ctx.clock.time_factor
    if fast and hasattr(ctx.clock, "set_factor"):
        ctx.clock.set_factor(float(fast))
    try:
        if not ctx.sleep_until(until):
            raise Aborted("stop requested")
    finally:
        if fast and hasattr(ctx.clock, "set_factor"):
            ctx.clock.set_factor(normal)
    return "dispatch"
