"""Startup: apply the camera settings and recover frames a crash left without a library row."""

from __future__ import annotations

from agent.devices.hygiene import bit_depth_problem
from agent.night.context import Aborted, NightContext


def site_and_time(ctx: NightContext) -> None:
    """The mount gets our site and the best time we have (GPS over an unsynchronised Pi clock)."""
    import datetime as dt

    from agent.devices.sim_clock import SimClock
    from agent.devices.timecheck import check_clock, clock_synchronised, gps_time

    when = ctx.now()
    if not isinstance(ctx.clock, SimClock):  # a simulated night has its own time
        gps = ctx.seq.indi.devices.gps
        gps_now = gps_time(ctx.rig.client, gps) if gps else None
        check = check_clock(dt.datetime.now(dt.UTC), gps_now, clock_synchronised())
        for warning in check.warnings:
            ctx.note("warning", warning)
        when = check.best_time
    if ctx.rig.mount is not None:
        site = ctx.seq.site
        for warning in ctx.rig.mount.push_site_and_time(site.latitude, site.longitude, site.elevation, when=when):
            ctx.note("warning", warning)


def run(ctx: NightContext) -> str:
    cam = ctx.rig.camera
    cfg = ctx.seq.camera
    if cfg.gain is not None:
        cam.set_gain(cfg.gain)
    if cfg.offset is not None:
        cam.set_offset(cfg.offset)
    cam.prepare(binning=cfg.binning)  # FITS, no compression, client upload, 16-bit, full frame: verified
    if cfg.readout_mode:
        cam.set_readout_mode(cfg.readout_mode)
    if problem := bit_depth_problem(cam.client, cam.name, cfg.bit_depth):  # the lights' depth, as declared
        raise Aborted(f"night refused: {problem}")
    site_and_time(ctx)
    recovered = 0
    if ctx.night_dir.exists():
        known = ctx.library.known_paths(ctx.night_dir)
        for path in sorted(ctx.night_dir.rglob("*.fits")):
            if str(path.resolve()) not in known:
                ctx.library.ingest_file(path)
                recovered += 1
    if recovered:
        ctx.note("info", f"recovered {recovered} frame(s) written before the last stop")
    return "connected"
