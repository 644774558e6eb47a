"""Cool down: bring the sensor to the set-point before anything that needs it.

A cooler that cannot get there (a warm night) either moves the night to the nearest set-point it
holds — only when the sequence file allows it, so every frame of the night still matches — or the
night goes on without darks, and says so.
"""

from __future__ import annotations

import math

from agent.errors import IndiError
from agent.night.context import NightContext
from agent.night.states.common import wait_cooled


def run(ctx: NightContext, timeout_s: float = 1800.0) -> str:
    cfg = ctx.seq.camera
    cam = ctx.rig.camera
    ctx.cooler_resting = False
    if ctx.seq.calibration.darks.by_day and "day_calibration" in ctx.progress.finished_activities:
        from agent.night.states.calibration import rest_the_cooler

        if rest_the_cooler(ctx):
            return "cooled"  # restarted in the afternoon after the day's darks: the rest goes on
    if cfg.set_point is None or cam.temperature() is None:
        return "cooled"
    if not cam.is_cooled():
        ctx.set_point = None
        ctx.note(
            "warning",
            f"{cam.name} has no cooler: the set-point {cfg.set_point:g} °C is ignored; frames are keyed and "
            "darks matched by the sensor temperature they had",
        )
        return "cooled"
    target = ctx.set_point if ctx.set_point is not None else cfg.set_point
    wall = max(10.0, timeout_s / max(ctx.clock.time_factor, 1e-9))
    cam.set_temperature(target)
    ctx.set_point = target
    try:
        wait_cooled(ctx, target, cfg.set_point_tolerance, wall)
        ctx.cooler_ok = True
        return "cooled"
    except IndiError:
        reached = cam.temperature()
    if cfg.allow_warmer_set_point and reached is not None:
        warmer = float(math.ceil(reached + cfg.set_point_tolerance))
        cam.set_temperature(warmer)
        try:
            wait_cooled(ctx, warmer, cfg.set_point_tolerance, wall)
        except IndiError:
            pass
        else:
            ctx.set_point = warmer
            ctx.cooler_ok = True
            ctx.note("warning", f"cooler could not reach {target:g} °C (at {reached:.1f} °C): the night runs at "
                     f"{warmer:g} °C as the sequence file allows; its darks and flats are taken there too")
            return "cooled"
    ctx.cooler_ok = False
    ctx.note(
        "warning",
        f"cooler did not reach {target:g} °C (at {reached} °C): lights go on, darks are skipped tonight "
        "because they would not match (allow_warmer_set_point lets the night move to a warmer set-point)",
    )
    return "cooled"
