"""Pieces several activities share: capturing one frame into the library, cap and light moves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from agent.errors import ExposureFailed, IndiError, IndiTimeout
from agent.night.context import Aborted, NightContext, SkyClosed
from agent.night.housekeeping import check_space

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
    readout_mode: str | None = None,
) -> Path:
    """Expose once and store; returns where the frame went (the camera retakes a failed frame).

    The camera is put in `readout_mode` first when it is in another (lights, and the calibration
    that must match them, are taken in their block's mode); lights carry the mount's pointing.
    """
    ctx.check_abort()
    if frame_type == "light":
        ctx.check_sky()
    check_space(ctx)
    cam = ctx.rig.camera
    cam.time_factor = ctx.clock.time_factor
    if readout_mode and cam.current_readout_mode() != readout_mode:
        cam.set_readout_mode(readout_mode)
    extra = None
    if frame_type == "light" and ctx.rig.mount is not None:
        try:
            extra = ctx.rig.mount.pointing_header(when=ctx.now())
        except IndiError as exc:
            log.warning("no pointing cards for this light: %s", exc)
    try:
        frame = cam.expose(exposure, frame_type, filter_name=filter_name, extra_header=extra)
    except ExposureFailed as exc:
        if ctx.abort.is_set():
            raise Aborted("stop requested") from exc
        if ctx.sky_stop is not None and ctx.sky_stop.is_set() and ctx.safety is not None:
            raise SkyClosed(ctx.safety.hold_reason() or "unsafe") from exc
        raise
    path = ctx.store_frame(frame, frame_type, exposure, filter_name, target)
    check_cooler(ctx)
    ctx.frame_done()
    return path


def check_cooler(ctx: NightContext) -> None:
    """A cooler whose reading stopped moving would pick wrong darks: stop taking darks and say so."""
    if not ctx.cooler_ok or ctx.set_point is None:
        return
    try:
        frozen = ctx.rig.camera.temperature_frozen()
    except IndiError:
        return
    if frozen:
        ctx.cooler_ok = False
        ctx.progress.record_fault("temperature reading frozen")
        ctx.note(
            "warning",
            f"{ctx.rig.camera.name}'s temperature reading has not changed for a long while: it cannot be "
            "trusted, so no more darks tonight; check the camera's cooler and driver",
        )


def close_cap_for_darks(ctx: NightContext) -> bool:
    """Cap closed (commanded and verified: an unknown cap is closed) and light off; False (with a
    note) when there is no cap to close."""
    panel = ctx.rig.panel
    if panel is None or not panel.has_cap:
        return False
    if panel.light_on():
        panel.light(False)
    panel.ensure_closed()
    if ctx.sky_stop is not None:
        ctx.sky_stop.covered = True
    return True


def open_cap_for_sky(ctx: NightContext) -> None:
    """Cap open (an unknown cap is opened and verified), light off."""
    panel = ctx.rig.panel
    if panel is None:
        return
    try:
        if panel.light_on():
            panel.light(False)
        if panel.has_cap:
            ctx.check_sky()  # never open the cap into rain
            panel.ensure_open()
            if ctx.sky_stop is not None:
                ctx.sky_stop.covered = False
            if ctx.safety is not None and ctx.safety.closed_up:
                ctx.safety.closed_up = False
                from agent.night.closeup import mark_reopened

                mark_reopened(ctx)
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


def wait_cooled(ctx: NightContext, target: float, tolerance: float, timeout_wall: float) -> float:
    """`wait_temperature` in one-second slices, so bad weather is closed up for (and a stop obeyed)
    while the sensor cools; raises IndiError when the sensor does not get there in time."""
    import time

    from agent.night.closeup import close_up_if_unsafe

    end = time.monotonic() + timeout_wall
    while True:
        ctx.check_abort()
        close_up_if_unsafe(ctx)
        left = end - time.monotonic()
        try:
            return ctx.rig.camera.wait_temperature(target, tolerance, timeout=min(1.0, max(left, 0.01)))
        except IndiTimeout:
            if time.monotonic() >= end:
                raise
