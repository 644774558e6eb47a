"""`obsagent capture`: set the camera up and capture frames to FITS files."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.commands.devices import add_indi_option
from agent.devices import FRAME_TYPES, IndiClient, parse_address
from agent.devices.rig import connect_rig
from agent.errors import ObsAgentError
from agent.outputs import output_folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capture", help="capture light/dark/bias/flat/darkflat frames to FITS files")
    add_indi_option(p)
    p.add_argument("--type", dest="frame_type", choices=FRAME_TYPES, required=True)
    p.add_argument("--exposure", type=float, required=True, metavar="S", help="exposure in seconds")
    p.add_argument("--count", type=int, default=1, metavar="N")
    p.add_argument("--filter", help="filter name (moves the wheel)")
    p.add_argument("--gain", type=float)
    p.add_argument("--offset", type=float)
    p.add_argument("--bin", type=int, dest="binning", metavar="B")
    p.add_argument("--temperature", type=float, metavar="T", help="cooler set-point; waits until reached")
    p.add_argument("--temperature-timeout", type=float, default=900.0, metavar="S")
    p.add_argument("--camera", help="camera device name (default: the first camera)")
    p.add_argument("--wheel", help="filter wheel device name")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.set_defaults(handler=run)


def frame_filename(frame_type: str, filter_name: str | None, exposure: float, index: int) -> str:
    parts = [frame_type]
    if filter_name and frame_type in ("light", "flat"):
        parts.append(filter_name.replace(" ", "_").replace("/", "_"))
    parts.append(f"{exposure:g}s")
    parts.append(f"{index:04d}")
    return "_".join(parts) + ".fits"


def run(args: argparse.Namespace) -> int:
    output_folder(args.out, "--out")
    if args.count < 1:
        raise ObsAgentError("--count must be at least 1")
    if args.exposure < 0:
        raise ObsAgentError("--exposure must be ≥ 0 seconds")
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    host, port = parse_address(args.indi)
    written: list[Path] = []
    with IndiClient(host, port) as client:
        rig = connect_rig(client, camera=args.camera, wheel=args.wheel, need_wheel=bool(args.filter))
        cam = rig.camera
        if args.gain is not None:
            cam.set_gain(args.gain)
        if args.offset is not None:
            cam.set_offset(args.offset)
        if args.binning is not None:
            cam.set_binning(args.binning)
        if args.filter and rig.wheel is not None:
            rig.wheel.move_to(args.filter)
        if args.temperature is not None:
            cam.set_temperature(args.temperature)
            print(f"cooling {cam.name} to {args.temperature:g} °C …")
            cam.wait_temperature(args.temperature, timeout=args.temperature_timeout)
        filter_name = args.filter or (rig.wheel.current() if rig.wheel else None)
        args.out.mkdir(parents=True, exist_ok=True)
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
        ) as progress:
            task = progress.add_task(f"{args.frame_type} {args.exposure:g}s", total=args.count)
            for index in range(1, args.count + 1):
                frame = cam.expose(args.exposure, args.frame_type, filter_name=filter_name)
                path = args.out / frame_filename(args.frame_type, filter_name, args.exposure, index)
                frame.write(path)
                written.append(path)
                progress.advance(task)
    print(f"wrote {len(written)} frame(s) to {args.out}")
    return 0
