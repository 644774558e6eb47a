"""Sky flats on INDI devices: the camera and wheel behind `SkyCamera`, mount pointing, and the night's state.

Pointing: ≈ 75° altitude opposite the Sun with tracking off, so the sky drifts between frames and stars
never land twice on the same pixels (the median combine then removes them).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from agent.clock import Clock, parse_utc
from agent.flats.sky import SkyShot

if TYPE_CHECKING:
    from agent.devices.rig import Rig
    from agent.night.context import NightContext

log = logging.getLogger(__name__)

FLAT_ALTITUDE = 75.0


class IndiSkyCamera:
    """Moves the wheel when the filter changes, exposes a flat, and times it in the camera's clock."""

    def __init__(self, rig: Rig, clock: Clock) -> None:
        self.rig = rig
        self.clock = clock
        self._filter: str | None = None
        self.last_header: object | None = None

    def expose(self, filter_name: str, exposure: float) -> SkyShot:
        if self.rig.wheel is not None and filter_name != self._filter:
            self.rig.wheel.move_to(filter_name)
            self._filter = filter_name
        before = self.clock.now()
        frame = self.rig.camera.expose(exposure, "flat", filter_name=filter_name)
        start = before
        stamp = frame.header.get("DATE-OBS")
        if stamp:
            try:
                start = parse_utc(str(stamp))
            except ValueError:
                start = before
        self.last_header = frame.header
        return SkyShot(data=frame.data, start=start, exposure=float(frame.header.get("EXPTIME", exposure)),
                       header=frame.header)


def point_opposite_sun(rig: Rig, sun_azimuth: float, when: dt.datetime) -> str | None:
    """Slew to ≈75° altitude opposite the Sun, tracking off; returns a note when there is no mount."""
    if rig.mount is None:
        return "no mount: sky flats are taken wherever the telescope points"
    if rig.client.has(rig.mount.name, "TELESCOPE_PARK") and rig.mount.parked():
        rig.mount.unpark()
    rig.mount.goto_altaz(FLAT_ALTITUDE, (sun_azimuth + 180.0) % 360.0, when=when, track=False)
    return None


def sun_azimuth(lat: float, lon: float, when: dt.datetime) -> float:
    from agent import offline

    offline.configure()
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_sun
    from astropy.time import Time
    from astropy.utils import iers

    from agent.sky.iers import earth_orientation_table

    t = Time(when)
    with iers.earth_orientation_table.set(earth_orientation_table()):
        altaz = get_sun(t).transform_to(AltAz(obstime=t, location=EarthLocation(lat=lat * u.deg, lon=lon * u.deg)))
    return float(altaz.az.deg)


def setup_key(camera: str, gain: float | None, binning: int, readout_mode: str | None) -> str:
    g = "-" if gain is None else f"{gain:g}"
    return f"{camera}|{g}|{binning}|{readout_mode or '-'}"


def run_sky_window(ctx: NightContext, period: str) -> str:
    """The night's dusk/dawn flat state: the flats the library lacks, in tonight's window."""
    from agent.devices.frame import Frame
    from agent.flats.sky import SkyFlatRun, SunTrack
    from agent.flats.target import FlatTarget, frame_level
    from agent.flats.twilight import TwilightStore
    from agent.library.queries.flat_history import flats_wanted
    from agent.night.services import flat_needs

    wanted = flats_wanted(ctx.seq, ctx.library, ctx.night, flat_needs(ctx), [b.filter for b in ctx.plan.blocks])
    if not wanted:
        ctx.note("info", f"{period} flats: none needed")
        return "dispatch"
    window = ctx.plan.dusk_flat_window if period == "dusk" else ctx.plan.dawn_flat_window
    if window.start is None or window.end is None:
        ctx.note("warning", f"no {period} sky-flat window: {window.reason}")
        return "dispatch"
    seq, policy = ctx.seq, ctx.seq.calibration.flats
    cam = ctx.rig.camera
    if seq.camera.readout_mode is not None:
        cam.set_readout_mode(seq.camera.readout_mode)
    if seq.camera.gain is not None:
        cam.set_gain(seq.camera.gain)
    cam.set_binning(seq.camera.binning)
    target = FlatTarget(policy.adu_target, policy.adu_tolerance)
    if ctx.rig.panel is not None and ctx.rig.panel.has_cap:
        ctx.rig.panel.light(False)
        ctx.rig.panel.open_cap()
    site = seq.site
    note = point_opposite_sun(ctx.rig, sun_azimuth(site.latitude, site.longitude, ctx.now()), ctx.now())
    if note:
        ctx.note("info", note)
    store = TwilightStore.in_data_dir(ctx.data_dir)
    model = store.model(setup_key(cam.name, cam.gain(), seq.camera.binning, cam.current_readout_mode()))
    bias, bias_note = bias_level(ctx)
    if bias_note:
        ctx.note("warning", bias_note)
    camera = IndiSkyCamera(ctx.rig, ctx.clock)

    def sink(shot: SkyShot, filter_name: str) -> Path:
        from astropy.io import fits

        header = shot.header if isinstance(shot.header, fits.Header) else fits.Header()
        header["FLATLVL"] = (round(frame_level(shot.data), 1), "median ADU when captured")
        return ctx.store_frame(Frame(shot.data, header), "flat", shot.exposure, filter_name)

    run = SkyFlatRun(camera, ctx.clock, SunTrack(site.latitude, site.longitude, window.start, window.end),
                     period, (window.start, window.end), target, policy.exposure_min, policy.exposure_max,
                     model, pedestal=bias, sink=sink, abort=ctx.abort)
    predicted = run.predict(wanted)
    if any(predicted.values()):
        ctx.note("info", f"{period} flats predicted: " + ", ".join(f"{f} {n}/{wanted[f]}" for f, n in predicted.items()))
    report = run.run(wanted)
    store.save(model)
    for f, n in report.counts.items():
        why = report.stopped.get(f)
        ctx.note("info", f"{period} flats {f}: {n} of {wanted[f]}" + (f" ({why})" if why and n < wanted[f] else ""))
    rejected = report.rejected()
    if rejected:
        ctx.note("info", f"{period} flats rejected: {len(rejected)} (" + "; ".join(
            sorted({(r.reason or '').split(':')[0] for r in rejected})) + ")")
    return "dispatch"


def bias_level(ctx: NightContext) -> tuple[float, str | None]:
    """The pedestal sky rates are measured above: the current master bias median, else 0 with a warning."""
    import numpy as np

    from agent.library.keys import FrameType
    from agent.stacking.products import read_product

    for m in ctx.library.masters(current_only=True, frame_type=FrameType.BIAS):
        if m.key.camera == ctx.rig.camera.name:
            data, _ = read_product(m.path)  # in ADU, whichever form the master was written in
            return float(np.median(data)), None
    return 0.0, "no master bias yet: sky rates include the bias pedestal (first exposures may miss the level)"
