"""Cool down: bring the sensor to the set-point before anything that needs it."""

from __future__ import annotations

from agent.errors import IndiError
from agent.sequencer.context import NightContext


def run(ctx: NightContext, timeout_s: float = 1800.0) -> str:
    cfg = ctx.seq.camera
    cam = ctx.rig.camera
    if cfg.set_point is None or cam.temperature() is None:
        return "cooled"
    cam.set_temperature(cfg.set_point)
    ctx.set_point = cfg.set_point
    wall = timeout_s / max(ctx.clock.time_factor, 1e-9)
    try:
        cam.wait_temperature(cfg.set_point, cfg.set_point_tolerance, timeout=max(wall, 10.0))
        ctx.cooler_ok = True
    except IndiError:
        reached = cam.temperature()
        ctx.cooler_ok = False
        ctx.note(
            "warning",
            f"cooler did not reach {cfg.set_point:g} °C (at {reached} °C): lights go on, darks are skipped "
            "tonight because they would not match",
        )
    return "cooled"
