"""End of the night: warm the sensor gently, then close the cap, light off, tracking off, park."""

from __future__ import annotations

import contextlib

from agent.errors import IndiError
from agent.night.context import NightContext


def run_warmup(ctx: NightContext) -> str:
    cam = ctx.rig.camera
    if ctx.set_point is not None and cam.temperature() is not None:
        with contextlib.suppress(IndiError):
            cam.set_cooler(False)
    ctx.note("info", "cooler off")
    return "warm"


def make_safe(ctx: NightContext) -> list[str]:
    """Abort the exposure, close the cap, light off, stop tracking, park. Returns what failed."""
    failures: list[str] = []
    steps = [
        ("abort exposure", lambda: ctx.rig.camera.abort()),
        ("light off", lambda: ctx.rig.panel.light(False) if ctx.rig.panel else None),
        ("close cap", lambda: ctx.rig.panel.close_cap() if ctx.rig.panel and ctx.rig.panel.has_cap else None),
        ("tracking off", lambda: ctx.rig.mount.set_tracking(False) if ctx.rig.mount else None),
    ]
    for what, step in steps:
        try:
            step()
        except (IndiError, OSError) as exc:
            failures.append(f"{what}: {exc}")
    return failures


def run_park(ctx: NightContext) -> str:
    failures = make_safe(ctx)
    if ctx.rig.mount is not None:
        try:
            ctx.rig.mount.park()
        except IndiError as exc:
            failures.append(f"park: {exc}")
    for failure in failures:
        ctx.note("warning", failure)
    return "parked"
