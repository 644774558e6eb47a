"""Imaging: the planner's blocks — slew, filter, set-point held, lights into the library."""

from __future__ import annotations

import logging

from agent.errors import IndiError
from agent.night.context import NightContext
from agent.night.dispatch import active_block, block_until, remaining_in_block
from agent.night.states.common import capture, move_filter, open_cap_for_sky, wait_cooled

log = logging.getLogger(__name__)


def _hold_set_point(ctx: NightContext, max_wait_s: float = 900.0) -> None:
    """Pause while the sensor is out of tolerance (e.g. the cooler lost ground); lights wait for it."""
    if ctx.set_point is None or not ctx.cooler_ok:
        return
    cam = ctx.rig.camera
    temp = cam.temperature()
    tolerance = ctx.seq.camera.set_point_tolerance
    if temp is None or abs(temp - ctx.set_point) <= tolerance:
        return
    ctx.note(
        "warning", f"sensor at {temp:.1f} °C, set-point {ctx.set_point:g} °C: pausing lights until it is back"
    )
    try:
        wait_cooled(ctx, ctx.set_point, tolerance, max(5.0, max_wait_s / ctx.clock.time_factor))
    except IndiError as exc:
        ctx.note("warning", f"{exc}; imaging goes on out of tolerance")


def _point(ctx: NightContext, target_name: str) -> None:
    mount = ctx.rig.mount
    if mount is None:
        return
    target = next((t for t in ctx.seq.targets if t.name == target_name), None)
    if target is None:
        return
    if mount.parked():
        mount.unpark()
    mount.goto_j2000(target.ra_deg, target.dec_deg, when=ctx.now())


def run(ctx: NightContext) -> str:
    open_cap_for_sky(ctx)
    pointed: str | None = None
    while True:
        ctx.check_abort()
        now = ctx.now()
        block = active_block(ctx, now)
        if block is None:
            return "dispatch"
        if pointed != block.target:
            log.debug("pointing at %s", block.target)
            _point(ctx, block.target)
            pointed = block.target
            log.debug("pointed; preparing the camera")
            ctx.rig.camera.prepare(binning=ctx.seq.camera.binning)  # another client may have changed it
        log.debug("filter %s", block.filter)
        move_filter(ctx, block.filter)
        log.debug("set-point")
        _hold_set_point(ctx)
        log.debug("capturing")
        ctx.status.update(
            activity="imaging",
            target=block.target,
            filter=block.filter,
            remaining=remaining_in_block(ctx, block),
        )
        if (block_until(ctx, block, now) - ctx.now()).total_seconds() < block.exposure:
            return "dispatch"  # the next frame would overrun the block
        path = capture(ctx, "light", block.exposure, block.filter, block.target, block.config.readout_mode)
        if ctx.calibrator is not None:
            ctx.calibrator.submit(path)
