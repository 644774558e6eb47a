"""`obsagent serve FILE`: run night after night as a service (plan, cool, night, day, next night)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.paths import data_dir

log = logging.getLogger(__name__)

SIM_FACTOR = 300.0
SIM_FAST_FORWARD = 3000.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run every night from a sequence file, as a long-lived service")
    p.add_argument("sequence", type=Path, metavar="FILE")
    p.add_argument("--data", help="data directory (default: OBSAGENT_DATA or ~/.local/share/obsagent)")
    p.add_argument("--indi", metavar="HOST:PORT", help="INDI server (default: the sequence file's)")
    p.add_argument("--nights", type=int, metavar="N", help="stop after N finished nights (default: run for ever)")
    p.add_argument("--until-night", metavar="YYYY-MM-DD",
                   help="stop once the night of this date is finished (counted from the data, so a restart keeps it)")
    p.add_argument("--sim", action="store_true", help="start the simulated observatory and run against it")
    p.add_argument("--weather", type=Path, metavar="SCENARIO", help="with --sim: the weather scenario file")
    p.add_argument("--sim-start", metavar="ISO", help="with --sim: UTC start (default: before tonight's cooling)")
    p.add_argument("--time-factor", type=float, default=SIM_FACTOR, help="with --sim: simulated s per wall s")
    p.add_argument("--preset", default="small", help="with --sim: sensor preset")
    p.add_argument("--fast-forward", type=float, metavar="F",
                   help="with a simulator clock: simulated s per wall s while nothing is due (day, waits)")
    p.set_defaults(handler=serve)


def _check(args: argparse.Namespace) -> None:
    if args.nights is not None and args.nights < 1:
        raise ConfigError(f"--nights {args.nights}: give 1 or more, or leave it out to run for ever")
    if not args.sim:
        for flag, value in (("--weather", args.weather), ("--sim-start", args.sim_start)):
            if value is not None:
                raise ConfigError(f"{flag} needs --sim (it sets up the simulated observatory)")
    if args.weather is not None and not args.weather.is_file():
        raise ConfigError(f"--weather {args.weather}: no such scenario file; check the path")
    if args.until_night is not None:
        try:
            args.until_night = dt.date.fromisoformat(args.until_night)
        except ValueError:
            raise ConfigError(f"--until-night {args.until_night!r} is not a date YYYY-MM-DD") from None
    if args.time_factor <= 0:
        raise ConfigError(f"--time-factor {args.time_factor:g}: give a positive number")


def serve(args: argparse.Namespace) -> int:
    from agent.serve.loop import ServeLoop, ServeOptions
    from agent.serve.sequence_file import SequenceFile
    from agent.service.systemd import ServiceNotifier

    _check(args)
    from agent.service.logging import configure_service_logging

    configure_service_logging(logging.DEBUG if args.verbose >= 2 else logging.INFO)
    logging.getLogger("transitions").setLevel(logging.WARNING)  # every state change is our own line already
    root = data_dir(args.data)
    source = SequenceFile(args.sequence)
    seq = source.current
    rig = None
    indi = args.indi or seq.indi.address
    fast_forward = args.fast_forward
    if args.sim:
        rig = _start_sim(args, seq, root)
        source = SequenceFile(args.sequence, adapt=rig.adapt)
        indi = rig.address
        fast_forward = fast_forward or SIM_FAST_FORWARD
    from agent.commands.run import start_uploads

    notifications = _Notifications(source)

    options = ServeOptions(
        data=root, indi=indi, nights=args.nights, last_night=args.until_night, fast_forward=fast_forward,
        uploads=start_uploads,
        notify=notifications, service=ServiceNotifier(),
    )
    loop = ServeLoop(source, options)
    try:
        result = loop.run()
    finally:
        notifications.close()
        if rig is not None:
            rig.close()
    if args.sim or args.nights or args.until_night:
        _print_campaign(source, root)
    if result.stopped:
        print(f"stopped ({result.stopped}) after {len(result.nights)} night(s)")
    return 0


def _start_sim(args: argparse.Namespace, seq: Any, root: Path) -> Any:
    from agent.planner import default_night
    from agent.serve.calendar import sim_start
    from agent.serve.simrig import start_sim_rig

    if args.sim_start:
        try:
            start = dt.datetime.fromisoformat(args.sim_start)
        except ValueError:
            raise ConfigError(f"--sim-start {args.sim_start!r} is not an ISO date and time") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
    else:
        start = sim_start(seq, default_night(seq.site.zone))
    rig = start_sim_rig(seq, start, args.time_factor, args.preset, root / "logs", weather=args.weather)
    print(f"simulated observatory on {rig.address}, clock from {start:%Y-%m-%d %H:%M} UTC at ×{args.time_factor:g}")
    return rig


class _Notifications:
    """(kind, title, body) → the notification targets of the sequence file in force; a reloaded
    file with other targets gets a new notifier, the old one sends what it holds first."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.settings: Any = None
        self.notifier: Any = None

    def __call__(self, kind: str, title: str, body: str) -> None:
        from agent.notify import Notifier

        settings = self.source.current.notifications
        if self.notifier is None or settings != self.settings:
            self.close()
            self.settings, self.notifier = settings, Notifier(settings)
        self.notifier.send(kind, title, body)

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close(timeout=10.0)
            self.notifier = None


def _print_campaign(source: Any, root: Path) -> None:
    from agent.library.queries.campaign import campaign_progress
    from agent.library.store import Library

    lib = Library.open(root)
    try:
        rows = campaign_progress(lib, source.current)
        print("campaign:")
        for row in rows:
            state = "complete" if row.finished else "in progress"
            print(f"  {row.target:<12} {row.filter:<6} {row.exposure:>6g}s  {row.done:>4}/{row.total:<4} {state}")
        from agent.library.needs import needs
        from agent.library.policy import library_policy

        missing = needs(lib, library_policy(source.current))
        print(f"needs: {len(missing)} open" if missing else "needs: nothing missing")
        for need in missing[:20]:
            print(f"  {need.kind:<12} {need.frame_type.value:<8} {need.have}/{need.target}  {need.key.describe()}: "
                  f"{need.reason}")
    finally:
        lib.close()
