"""`obsagent flats`: take the flats (and dark flats) still needed, from the panel or the twilight sky."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from agent.commands.devices import add_indi_option
from agent.errors import ConfigError, ObsAgentError
from agent.outputs import output_folder

if TYPE_CHECKING:
    from agent.clock import Clock
    from agent.config import Sequence
    from agent.devices.rig import Rig
    from agent.flats.panel_run import FlatGroup
    from agent.flats.target import FlatTarget


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flats", help="take the flats still needed from the flat panel or the twilight sky")
    add_indi_option(p)
    p.add_argument("--source", choices=("panel", "sky"), help="default: the sequence's calibration.flats.source")
    p.add_argument("--filters", help="comma-separated, e.g. L,R,G,B (default: the sequence's or the wheel's)")
    p.add_argument("--count", type=int, metavar="N",
                   help="flats per filter; frames already in --out count (a rerun resumes). "
                        "Without it the calibration library says what is lacking")
    p.add_argument("--sequence", type=Path, metavar="FILE", help="sequence file: devices, camera, flat policy, site")
    p.add_argument("--period", choices=("dusk", "dawn"), help="sky flats: which window (default: the next one)")
    p.add_argument("--out", type=Path, metavar="DIR", help="where frames go with --count (default DATA/flats/frames)")
    p.add_argument("--data", metavar="DIR", help="data directory (trained settings, learned twilight, library)")
    p.add_argument("--camera")
    p.add_argument("--wheel")
    p.add_argument("--panel")
    p.add_argument("--dust-cap", help="the dust cover's device when it is not the panel (a light-only panel)")
    p.add_argument("--mount")
    p.add_argument("--gain", type=float)
    p.add_argument("--offset", type=float)
    p.add_argument("--bin", type=int, dest="binning", metavar="B")
    p.add_argument("--readout-mode", help="the lights' readout mode (set before every flat block)")
    p.add_argument("--retrain", action="store_true", help="panel: forget the trained settings and search again")
    p.add_argument("--no-dark-flats", action="store_true", help="panel: skip the dark flats")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        output_folder(args.out, "--out")
    from agent.config import load_sequence
    from agent.devices import IndiClient, parse_address
    from agent.devices.rig import connect_rig
    from agent.paths import data_dir

    seq = load_sequence(args.sequence) if args.sequence else None
    if args.count is not None and args.count < 1:
        raise ConfigError("--count must be at least 1")
    source = args.source or _source_of(seq)
    data = data_dir(args.data)
    address = args.indi if args.indi != "localhost:7624" or seq is None else seq.indi.address
    devices = seq.indi.devices if seq else None
    host, port = parse_address(address)
    with IndiClient(host, port) as client:
        rig = connect_rig(
            client,
            camera=args.camera or (devices.camera if devices else None),
            wheel=args.wheel or (devices.wheel if devices else None),
            panel=args.panel or (devices.flat_panel if devices else None),
            dust_cap=args.dust_cap or (devices.dust_cap if devices else None),
            mount=args.mount or (devices.mount if devices and source == "sky" else None),
            need_panel=source == "panel",
        )
        clock = _clock(client)
        rig.camera.time_factor = clock.time_factor
        filters = _filters(args, seq, rig)
        if source == "panel":
            return _panel(args, seq, rig, filters, data)
        return _sky(args, seq, rig, clock, filters, data)


def _source_of(seq: Sequence | None) -> str:
    if seq is None:
        return "panel"
    return "panel" if seq.calibration.flats.source == "panel" else "sky"


def _clock(client: object) -> Clock:
    """The simulator's clock when the server has one (accelerated time), else real time."""
    from agent.clock import RealClock
    from agent.devices import IndiClient
    from agent.devices.sim_clock import SimClock

    assert isinstance(client, IndiClient)
    if "Sim Clock" in client.devices():
        return SimClock(client)
    return RealClock()


def _filters(args: argparse.Namespace, seq: Sequence | None, rig: Rig) -> list[str]:
    if args.filters:
        names = [f.strip() for f in args.filters.split(",") if f.strip()]
    elif seq is not None:
        names = list(seq.filters)
    elif rig.wheel is not None:
        names = rig.wheel.names()
    else:
        raise ConfigError("no filter wheel and no --filters; name the filter in the light path with --filters")
    if not names:
        raise ConfigError("--filters names no filter; write e.g. --filters L,R,G,B")
    return names


def _target(seq: Sequence | None) -> FlatTarget:
    from agent.flats.target import FlatTarget

    if seq is None:
        return FlatTarget()
    policy = seq.calibration.flats
    return FlatTarget(policy.adu_target, policy.adu_tolerance)


def _group(rig: Rig, filter_name: str, gain: float | None, binning: int, readout: str | None) -> FlatGroup:
    from agent.flats.panel_run import FlatGroup

    return FlatGroup(rig.camera.name, filter_name, gain, None, binning, readout)


def _needs(args: argparse.Namespace, seq: Sequence | None, rig: Rig, filters: list[str], out: Path,
           gain: float | None, binning: int, readout: str | None, data: Path) -> tuple[dict[str, int], str]:
    """Flats still lacking per filter: --count minus what --out holds, or the library's needs."""
    from agent.flats.panel_run import existing_count

    if args.count is not None:
        needs = {}
        for f in filters:
            have = existing_count(out, "flat", _group(rig, f, gain, binning, readout))
            needs[f] = max(0, args.count - have)
        resumed = sum(args.count - n for n in needs.values())
        return needs, (f"{resumed} flat(s) already in {out}: resuming" if resumed else "")
    if seq is None:
        raise ConfigError("say how many flats: --count N, or --sequence FILE so the library can tell what is lacking")
    from agent.library.keys import FrameType
    from agent.library.needs import needs as library_needs
    from agent.library.policy import library_policy
    from agent.library.store import Library

    with Library.open(data) as lib:
        found = library_needs(lib, library_policy(seq))
    lacking: dict[str, int] = {}
    for need in found:
        wanted = need.frame_type is FrameType.FLAT and need.kind in ("missing", "expired", "accumulating")
        if wanted and need.key.filter in filters and need.key.camera == rig.camera.name:
            lacking[need.key.filter] = max(lacking.get(need.key.filter, 0), need.target - need.have)
    return {f: lacking.get(f, 0) for f in filters}, "needs from the calibration library"


def _panel(args: argparse.Namespace, seq: Sequence | None, rig: Rig, filters: list[str], data: Path) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn
    from rich.table import Table

    from agent.flats.panel_run import directory_sink, run_panel_flats
    from agent.flats.panel_search import ExposureLimits
    from agent.flats.trained import TrainedPanelTable

    console = Console()
    cam_cfg = seq.camera if seq else None
    gain = args.gain if args.gain is not None else (cam_cfg.gain if cam_cfg else None)
    offset = args.offset if args.offset is not None else (cam_cfg.offset if cam_cfg else None)
    binning = args.binning or (cam_cfg.binning if cam_cfg else 1)
    readout = args.readout_mode or (cam_cfg.readout_mode if cam_cfg else None)
    out = args.out or data / "flats" / "frames"
    group_gain = gain if gain is not None else rig.camera.gain()
    needs, how = _needs(args, seq, rig, filters, out, group_gain, binning, readout or rig.camera.current_readout_mode(),
                        data)
    if how:
        console.print(how)
    if not any(needs.values()):
        console.print("no flats needed")
        return 0
    table = TrainedPanelTable.in_data_dir(data)
    if args.retrain:
        for f in filters:
            table.forget(_group(rig, f, group_gain, binning, readout or rig.camera.current_readout_mode()).key())
    limits = ExposureLimits()
    if seq is not None:
        p = seq.calibration.flats
        limits = ExposureLimits(preferred_min=max(p.exposure_min, 0.5), preferred_max=min(p.exposure_max, 10.0),
                                allowed_min=p.exposure_min, allowed_max=p.exposure_max,
                                start=min(max(2.0, p.exposure_min), p.exposure_max))
    dark_flats = not args.no_dark_flats and (seq.calibration.flats.dark_flats if seq else True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  console=console) as progress:
        tasks: dict[str, TaskID] = {}

        def show(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done)

        report = run_panel_flats(
            rig, needs, _target(seq), table, directory_sink(out), limits=limits, gain=gain, offset=offset,
            binning=binning, readout_mode=readout, dark_flats=dark_flats,
            light_bit_depth=cam_cfg.bit_depth if cam_cfg else None, progress=show,
        )
    grid = Table(title=f"panel flats → {out}")
    for col in ("filter", "flats", "dark flats", "brightness", "exposure", "settings", "result"):
        grid.add_column(col)
    for o in report.outcomes:
        s = o.settings
        how_set = "trained" if o.trained else (f"searched ({o.test_frames} test frames)" if s else "")
        grid.add_row(o.filter, f"{len(o.flats)}/{o.wanted}", str(len(o.dark_flats)),
                     "" if s is None or s.brightness is None else f"{s.brightness:g}",
                     "" if s is None else f"{s.exposure:.3g} s", how_set,
                     o.error or ("; ".join(o.notes + o.rejected[-2:]) or "ok"))
    console.print(grid)
    for note in report.notes:
        console.print(f"note: {note}")
    failed = [o for o in report.outcomes if o.error]
    if failed:
        console.print(f"[red]flats incomplete:[/red] {failed[0].error}")
        return 1
    return 0


def _sky(args: argparse.Namespace, seq: Sequence | None, rig: Rig, clock: Clock, filters: list[str],
         data: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    from agent.devices.frame import Frame
    from agent.flats.panel_run import FlatGroup, directory_sink
    from agent.flats.sky import SkyFlatRun, SkyShot, SunTrack, find_window
    from agent.flats.twilight import TwilightStore
    from agent.night.sky_flats import IndiSkyCamera, point_opposite_sun, setup_key, sun_azimuth

    console = Console()
    cam = rig.camera
    cam_cfg = seq.camera if seq else None
    gain = args.gain if args.gain is not None else (cam_cfg.gain if cam_cfg else None)
    binning = args.binning or (cam_cfg.binning if cam_cfg else 1)
    readout = args.readout_mode or (cam_cfg.readout_mode if cam_cfg else None)
    if gain is not None:
        cam.set_gain(gain)
    cam.set_binning(binning)
    if readout is not None:
        cam.set_readout_mode(readout)
    if rig.panel is not None and rig.panel.has_cap:
        rig.panel.light(False)
        rig.panel.open_cap()  # a flip-flat left closed would give dark "sky" flats
    lat, lon = _site(seq, rig)
    now = clock.now()
    upper, lower = (seq.calibration.flats.sun_band.upper, seq.calibration.flats.sun_band.lower) if seq else (-2.0, -10.0)
    track = SunTrack(lat, lon, now, now + dt.timedelta(hours=26))
    window = None
    for period in ([args.period] if args.period else ["dusk", "dawn"]):
        found = find_window(track, now - dt.timedelta(hours=2), 26, period, upper, lower)
        if found is not None and found[1] > now and (window is None or found[0] < window[1][0]):
            window = (period, found)
    if window is None:
        raise ObsAgentError(f"no {args.period or 'sky-flat'} window in the next day at {lat:.1f}°; use --source panel")
    period, (start, end) = window
    console.print(f"{period} sky-flat window {start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC (Sun {upper:g}° to {lower:g}°)")
    out = args.out or data / "flats" / "frames"
    real_gain = gain if gain is not None else cam.gain()
    needs, how = _needs(args, seq, rig, filters, out, real_gain, binning, readout or cam.current_readout_mode(), data)
    if how:
        console.print(how)
    if not any(needs.values()):
        console.print("no flats needed")
        return 0
    policy = seq.calibration.flats if seq else None
    store = TwilightStore.in_data_dir(data)
    model = store.model(setup_key(cam.name, real_gain, binning, cam.current_readout_mode()))
    sink_dir = directory_sink(out)

    def sink(shot: SkyShot, filter_name: str) -> Path:
        from astropy.io import fits

        header = shot.header if isinstance(shot.header, fits.Header) else fits.Header()
        group = FlatGroup(cam.name, filter_name, real_gain, None, binning, readout)
        return sink_dir(Frame(shot.data, header), "flat", group, round(shot.exposure, 3))

    def show(record: object) -> None:
        from agent.flats.sky import SkyFrameRecord

        assert isinstance(record, SkyFrameRecord)
        status = "ok" if record.accepted else f"rejected: {record.reason}"
        console.print(f"{record.start:%H:%M:%S} {record.filter:>5} {record.exposure:7.2f} s "
                      f"sun {record.sun_altitude:6.2f}° level {100 * record.level / 65535:5.1f} %  {status}")

    from agent.flats.target import FlatTarget

    target = FlatTarget(policy.adu_target, policy.adu_tolerance) if policy else FlatTarget()
    run = SkyFlatRun(IndiSkyCamera(rig, clock), clock, track, period, (start, end), target,
                     policy.exposure_min if policy else 0.1, policy.exposure_max if policy else 30.0, model,
                     sink=sink, progress=show)
    predicted = run.predict(needs)
    if any(predicted.values()):
        console.print("predicted from past nights: " + ", ".join(f"{f} {predicted[f]}/{needs[f]}" for f in needs))
    if clock.now() < start:
        console.print(f"waiting for the window ({(start - clock.now()).total_seconds() / 60:.0f} min) …")
    note = point_opposite_sun(rig, sun_azimuth(lat, lon, max(start, clock.now())), max(start, clock.now()))
    if note:
        console.print(f"note: {note}")
    report = run.run(needs)
    store.save(model)
    grid = Table(title=f"{period} sky flats → {out}")
    for col in ("filter", "flats", "predicted", "rejected", "stopped because"):
        grid.add_column(col)
    for f in needs:
        rejected = [r for r in report.rejected() if r.filter == f]
        grid.add_row(f, f"{report.counts[f]}/{needs[f]}", str(predicted.get(f, "")) if any(predicted.values()) else "-",
                     str(len(rejected)), report.stopped.get(f, ""))
    console.print(grid)
    return 0 if all(report.counts[f] >= needs[f] for f in needs) else 1


def _site(seq: Sequence | None, rig: Rig) -> tuple[float, float]:
    if seq is not None:
        return seq.site.latitude, seq.site.longitude
    if rig.mount is not None:
        lat, lon, _ = rig.mount.site()
        return lat, lon
    raise ConfigError("sky flats need the site: give --sequence FILE or --mount with GEOGRAPHIC_COORD")
