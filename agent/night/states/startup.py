"""Startup: apply the camera settings and recover frames a crash left without a library row."""

from __future__ import annotations

from agent.night.context import NightContext


def run(ctx: NightContext) -> str:
    cam = ctx.rig.camera
    cfg = ctx.seq.camera
    if cfg.gain is not None:
        cam.set_gain(cfg.gain)
    if cfg.offset is not None:
        cam.set_offset(cfg.offset)
    cam.set_binning(cfg.binning)
    if cfg.readout_mode:
        cam.set_readout_mode(cfg.readout_mode)
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
