"""`obsagent sim`: run the simulated observatory (indiserver + indi_obsagent_sim) in the foreground."""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

from agent.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sim", help="run a simulated observatory (camera, wheel, flip-flat, mount) under indiserver")
    p.add_argument("--port", type=int, default=7624, help="INDI TCP port (default 7624)")
    p.add_argument("--site", help="JSON file with lat, lon and optional elevation")
    p.add_argument("--lat", type=float, help="site latitude, degrees north")
    p.add_argument("--lon", type=float, help="site longitude, degrees east")
    p.add_argument("--start", help="simulated UTC start instant, e.g. 2026-12-01T15:30 (default: now)")
    p.add_argument("--time-factor", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    p.add_argument("--preset", default="small", help="sensor preset: small, imx294, imx571, ccd")
    p.add_argument("--width", type=int, help="override the sensor width")
    p.add_argument("--height", type=int, help="override the sensor height")
    p.add_argument("--seed", type=int, default=1, help="model seed (fixed patterns, noise)")
    p.add_argument("--config", help="JSON file with any simulator settings (see docs/simulator.md)")
    p.set_defaults(handler=run)


def build_config(args: argparse.Namespace) -> object:
    from indi_sim.config import SimConfig, load_config

    cfg = load_config(args.config) if args.config else SimConfig()
    if args.site:
        try:
            site = json.loads(Path(args.site).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read site file {args.site}: {exc}; give a JSON object with lat and lon") from None
        cfg.lat, cfg.lon = float(site["lat"]), float(site["lon"])
        cfg.elevation = float(site.get("elevation", cfg.elevation))
    if args.lat is not None:
        cfg.lat = args.lat
    if args.lon is not None:
        cfg.lon = args.lon
    if args.start:
        cfg.start = args.start
    cfg.time_factor = args.time_factor
    cfg.preset = args.preset
    cfg.seed = args.seed
    if args.width:
        cfg.width = args.width
    if args.height:
        cfg.height = args.height
    cfg.validate("command line")
    return cfg


def run(args: argparse.Namespace) -> int:
    from indi_sim.launch import SimServer
    from indi_sim.model import PRESETS

    if args.preset not in PRESETS:
        raise ConfigError(f"unknown preset {args.preset!r}; use one of {', '.join(PRESETS)}")
    cfg = build_config(args)
    # Like a stock indiserver, restart a crashed driver (up to 10 times) instead of leaving it dead.
    server = SimServer(cfg, port=args.port, max_restarts=10)  # type: ignore[arg-type]
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    for signum in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal stops what we started, too
        signal.signal(signum, on_signal)
    with server:
        c = server.config
        print(f"simulated observatory on {server.address} (preset {c.preset}, seed {c.seed}, "
              f"site {c.lat:.3f} N {c.lon:.3f} E, time x{c.time_factor:g}, start {c.start or 'now'})")
        print(f"devices: {c.camera_name}, {c.wheel_name}, {c.panel_name}, {c.mount_name}, {c.clock_name}")
        print(f"connect: obsagent ... --indi {server.address}   (or any INDI client, e.g. KStars/Ekos)")
        print(f"server log: {server.log_path}; Ctrl-C stops")
        try:
            while not stop:
                if server.proc is None or server.proc.poll() is not None:
                    print(f"indiserver exited; see {server.log_path}")
                    return 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0
