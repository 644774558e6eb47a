"""Pieces several activities share: capturing one frame into the library, cap and light moves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from agent.errors import ExposureFailed, IndiError
from agent.night.context import Aborted, NightContext

log = logging.getLogger(__name__)


MAX_CORRUPT_PER_NIGHT = 40
"""Corrupt frames one camera may send in a night before we stop asking it for more."""


def count_frame_faults(ctx: NightContext) -> Callable[[str, Exception], None]:
    """The camera's fault hook: every retaken frame is counted for the report and noted.

    Frames are retaken by the camera itself (so flats, darks and lights alike cost one frame, not
    a reconnect of the rig); a camera that keeps sending corrupt frames all night is given up on.
    """

    def on_fault(cause: str, exc: Exception) -> None:
        tonight = ctx.progress.record_fault(cause)
        ctx.note("warning", f"{exc}; taking the frame again ({cause}: {tonight} tonight)")
        if cause == "corrupt frame" and tonight > MAX_CORRUPT_PER_NIGHT:
            raise IndiError(
                f"{ctx.rig.camera.name} sent {tonight} corrupt frames tonight; check its USB cable and driver"
            ) from exc

    return on_fault


def capture(
    ctx: NightContext,
    frame_type: str,
    exposure: float,
    filter_name: str | None = None,
    target: str | None = None,
) -> Path:
    """Expose once and store; returns where the frame went (the camera retakes a failed frame)."""
    ctx.check_abort()
    cam = ctx.rig.camera
    cam.time_factor = ctx.clock.time_factor
    try:
        frame = cam.expose(exposure, frame_type, filter_name=filter_name)
    except ExposureFailed as exc:
        if ctx.abort.is_set():
            raise Aborted("stop requested") from exc
        raise
    path = ctx.store_frame(frame, frame_type, exposure, filter_name, target)
    ctx.frame_done()
    return path


def close_cap_for_darks(ctx: NightContext) -> bool:
    """Cap closed and light off; False (with a note) when there is no cap to close."""
    panel = ctx.rig.panel
    if panel is None or not panel.has_cap:
        return False
    if panel.light_on():
        panel.light(False)
    if not panel.cap_closed():
        panel.close_cap()
    return True


def open_cap_for_sky(ctx: NightContext) -> None:
    panel = ctx.rig.panel
    if panel is None:
        return
    try:
        if panel.light_on():
            panel.light(False)
        if panel.has_cap and panel.cap_closed():
            panel.open_cap()
    except IndiError as exc:
        ctx.note("warning", f"flat panel: {exc}")
        raise


def move_filter(ctx: NightContext, filter_name: str) -> None:
    wheel = ctx.rig.wheel
    if wheel is None:
        if len(ctx.seq.filters) > 1:
            raise IndiError(
                "no filter wheel connected but the sequence uses several filters; connect the wheel"
            )
        return
    if wheel.current() != filter_name:
        wheel.move_to(filter_name)
