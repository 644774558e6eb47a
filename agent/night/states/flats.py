"""Flats: panel flats (flip-flat) or sky flats in the dusk/dawn windows, for what the library lacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.devices.frame import Frame
from agent.night.context import NightContext
from agent.night.services import flat_needs


def _sink(ctx: NightContext) -> Callable[[Frame, str, object, float], Path]:
    def sink(frame: Frame, kind: str, group: object, exposure: float) -> Path:
        filter_name = getattr(group, "filter", None)
        return ctx.store_frame(frame, kind, exposure, filter_name)

    return sink


def run_panel(ctx: NightContext) -> str:
    from agent.flats.panel_run import run_panel_flats
    from agent.flats.panel_search import ExposureLimits
    from agent.flats.target import FlatTarget
    from agent.flats.trained import TrainedPanelTable
    from agent.library.queries.flat_history import flats_wanted

    wanted = flats_wanted(ctx.seq, ctx.library, ctx.night, flat_needs(ctx), [b.filter for b in ctx.plan.blocks])
    if not wanted:
        ctx.note("info", "no flats needed tonight")
        return "dispatch"
    policy = ctx.seq.calibration.flats
    # Drivers scale 12/14-bit data to 16 bits, so the level is a fraction of the 16-bit range.
    target = FlatTarget(fraction=policy.adu_target, tolerance=policy.adu_tolerance)
    report = run_panel_flats(
        ctx.rig, wanted, target, TrainedPanelTable.in_data_dir(ctx.data_dir), _sink(ctx),
        limits=ExposureLimits(allowed_min=policy.exposure_min, allowed_max=policy.exposure_max,
                              preferred_min=max(policy.exposure_min, 0.5),
                              preferred_max=min(policy.exposure_max, 10.0)),
        gain=ctx.seq.camera.gain, offset=ctx.seq.camera.offset, binning=ctx.seq.camera.binning,
        readout_mode=ctx.seq.camera.readout_mode, dark_flats=policy.dark_flats,
    )
    for note in report.notes:
        ctx.note("warning", note)
    for outcome in report.outcomes:
        if outcome.error:
            ctx.note("warning", f"flats {outcome.filter}: {outcome.error}")
        else:
            ctx.note("info", f"flats {outcome.filter}: {len(outcome.flats)} flats, {len(outcome.dark_flats)} dark flats")
    return "dispatch"


def _run_sky(ctx: NightContext, period: str) -> str:
    from agent.night.sky_flats import run_sky_window

    return run_sky_window(ctx, period)


def run_dusk(ctx: NightContext) -> str:
    return _run_sky(ctx, "dusk")


def run_dawn(ctx: NightContext) -> str:
    return _run_sky(ctx, "dawn")
