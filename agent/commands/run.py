"""`obsagent run FILE [--sim]`: run the night unattended; `--sim` starts the simulated observatory too."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.sync.worker import SyncWorker
from agent.paths import data_dir

log = logging.getLogger(__name__)

SIM_FAST_FORWARD = 3000.0  # simulated seconds per wall second while nothing is due


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the night from a sequence file (capture, calibrate, build masters)")
    p.add_argument("sequence", type=Path, metavar="FILE")
    p.add_argument("--data", help="data directory (default: OBSAGENT_DATA or ~/.local/share/obsagent)")
    p.add_argument("--indi", metavar="HOST:PORT", help="INDI server (default: the sequence file's)")
    p.add_argument("--date", help="the night to run, YYYY-MM-DD (default: tonight)")
    p.add_argument("--sim", action="store_true", help="start the simulated observatory and run against it")
    p.add_argument("--time-factor", type=float, default=120.0, help="with --sim: simulated s per wall s")
    p.add_argument("--sim-start", metavar="ISO", help="with --sim: UTC start (default: before the dusk flats)")
    p.add_argument("--preset", default="small", help="with --sim: sensor preset")
    p.add_argument("--fast-forward", type=float, metavar="F",
                   help="with a simulator clock: run at this many simulated s per wall s while nothing is due")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.set_defaults(handler=run)


def _night_date(args: argparse.Namespace) -> dt.date | None:
    if not args.date:
        return None
    try:
        return dt.date.fromisoformat(args.date)
    except ValueError:
        raise ConfigError(f"--date {args.date!r} is not YYYY-MM-DD") from None


def sim_start_for(seq: Any, night: dt.date) -> dt.datetime:
    """Start the simulated clock shortly before the first thing the night does."""
    from agent.planner import plan_night

    plan = plan_night(seq, night)
    dusk = plan.sky_flat_windows[0]
    first = dusk.start if seq.calibration.flats.sky_at_dusk and dusk.start else (plan.sunset or plan.start)
    return first - dt.timedelta(minutes=20)


def run(args: argparse.Namespace) -> int:
    from agent.config import load_sequence
    from agent.night.runner import NightRunner
    from agent.planner import default_night
    from agent.serve.nightlog import attach_night_log

    seq = load_sequence(args.sequence)
    root = data_dir(args.data)
    night = _night_date(args)
    indi = args.indi
    fast_forward = args.fast_forward
    rig = None
    if args.sim:
        from agent.serve.simrig import start_sim_rig

        night = night or default_night(seq.site.zone)
        start = dt.datetime.fromisoformat(args.sim_start) if args.sim_start else sim_start_for(seq, night)
        rig = start_sim_rig(seq, start, args.time_factor, args.preset, root / "logs")
        indi = rig.address
        seq = rig.adapt(seq)
        fast_forward = fast_forward or SIM_FAST_FORWARD
        print(f"simulated observatory on {indi}, clock from {start:%Y-%m-%dT%H:%M:%S} UTC at ×{args.time_factor:g}")
    status_line = _StatusLine(enabled=not args.quiet and sys.stdout.isatty())
    runner = NightRunner(
        seq, root, indi=indi, night=night, on_status=status_line.update, uploads=start_uploads
    )
    handler: logging.Handler | None = None
    try:
        if fast_forward:
            runner.fast_forward = fast_forward
        night_key = (night or default_night(seq.site.zone)).isoformat()
        handler = attach_night_log(root, night_key)
        result = runner.run_in_thread()
    finally:
        status_line.close()
        if handler is not None:
            logging.getLogger().removeHandler(handler)
        if rig is not None:
            rig.close()
    from agent.night.report import build_report, print_report

    print_report(build_report(root, result.night))
    if result.aborted:
        print(f"night stopped: {result.reason}")
        return 1 if result.final_state == "safe" else 0
    print(f"data: {root}")
    return 0


class _StatusLine:
    """One live line on a terminal: state, activity, what is being captured."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = ""

    def update(self, ctx: Any) -> None:
        s = ctx.status
        parts = [f"{ctx.now():%H:%M:%S}Z", s.get("state", "")]
        for key in ("target", "filter", "frame_type", "remaining"):
            if s.get(key) is not None:
                parts.append(f"{key}={s[key]}")
        line = "  ".join(str(p) for p in parts)
        if self.enabled:
            sys.stdout.write("\r" + line[:120].ljust(self.last and len(self.last) or 0))
            sys.stdout.flush()
        else:
            log.info("state: %s", line)
        self.last = line

    def close(self) -> None:
        if self.enabled and self.last:
            sys.stdout.write("\n")


def start_uploads(data: Path, url: str) -> SyncWorker:
    """The night's uploader: the sync worker on its own thread; the night hands it new masters."""
    from agent.sync.worker import SyncWorker

    worker = SyncWorker(data, url)
    worker.start()
    return worker
