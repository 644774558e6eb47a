"""Start the real indiserver with a replay driver hosting some profiles."""

from __future__ import annotations

import stat
import sys
import tempfile
from pathlib import Path

from indi_sim.server import IndiServer


class ReplayServer(IndiServer):
    """indiserver + `indi_sim.replay.driver` for `profiles`; driver configs live in `home` between runs.

    `clock_start` (ISO UTC) adds the `Replay Clock` device: simulated time from that instant at
    `time_factor`, which a night follows (`indi_sim/replay/clock.py`).
    """

    def __init__(self, profiles: list[str], home: Path | None = None, time_factor: float = 100.0,
                 log_dir: str | None = None, clock_start: str | None = None) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="obsagent-replay-"))
        self.home = home or tmp / "indi-config"
        launcher = tmp / "indi_replay"
        launcher.write_text(f"#!/bin/sh\nexec {sys.executable} -m indi_sim.replay.driver\n")
        launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
        self.profiles = profiles
        env = {"OBSAGENT_REPLAY_PROFILES": ",".join(profiles), "OBSAGENT_REPLAY_HOME": str(self.home),
               "OBSAGENT_REPLAY_TIME_FACTOR": str(time_factor), "HOME": str(tmp)}
        if clock_start:
            env["OBSAGENT_REPLAY_START"] = clock_start
        super().__init__([str(launcher)], log_dir=log_dir, env=env)
