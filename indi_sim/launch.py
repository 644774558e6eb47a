"""Start indiserver with the simulator driver and a given configuration.

With a weather scenario the launcher also carries out what only it can: a `server_loss` kills
indiserver (and the driver with it) at the scenario's simulated instant and starts it again
`seconds` later. It follows simulated time through the clock file the driver writes on every
change of rate (`SimClock.state`), computing the same clock the driver runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from indi_sim.config import CONFIG_ENV, SimClock, SimConfig, driver_path, load_clock_state
from indi_sim.scenario import Timeline, load_scenario
from indi_sim.server import IndiServer

POLL_S = 0.05  # wall seconds between looks at the clock file


class ClockFollower:
    """The driver's simulated clock, read from its clock file (re-read whenever the file changes)."""

    def __init__(self, config: SimConfig, timeline: Timeline | None) -> None:
        assert config.clock_file is not None
        self.path = config.clock_file
        self.start = config.start
        slow = timeline.scenario.slow_motion if timeline else None
        self.clock = SimClock(None, config.time_factor, timeline.transitions if timeline else (),
                              slow.factor if slow else None, slow.seconds if slow else 0.0)
        self._stamp: int | None = None

    def now(self) -> datetime | None:
        """Simulated now, or None while the driver has not written its clock yet."""
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except OSError:
            return None if self._stamp is None else self.clock.now()
        if stamp != self._stamp:
            state = load_clock_state(self.path, self.start)
            if state is None:
                return None if self._stamp is None else self.clock.now()
            self.clock.restore(state)
            self._stamp = stamp
        return self.clock.now()


@dataclass
class ServerLoss:
    """One scenario server loss as carried out (simulated instants seen by the launcher)."""

    at: datetime  # when the scenario asked for it
    seconds: float  # simulated seconds down
    killed_at: datetime | None = None
    restarted_at: datetime | None = None


class SimServer(IndiServer):
    """An `IndiServer` running `indi_obsagent_sim` with `config` written to a private JSON file.

    The driver keeps its devices' settings in `home`/.indi like a real driver keeps them in
    ~/.indi (`indi_sim.persist`); None = the user's HOME. Two servers given the same `home` see
    what the first left behind. The driver's clock is kept in a private clock file, so a driver
    restarted by indiserver, or after `stop()`/`start()`, resumes simulated time where it would be.
    """

    def __init__(self, config: SimConfig, port: int | None = None, max_restarts: int = 0,
                 log_dir: str | None = None, home: str | os.PathLike[str] | None = None) -> None:
        config.validate()
        tmp = Path(tempfile.mkdtemp(prefix="obsagent-sim-"))
        if isinstance(config.weather_scenario, str):  # the driver runs elsewhere: give it an absolute path
            config.weather_scenario = str(Path(config.weather_scenario).resolve())
        if config.clock_file is None:
            config.clock_file = str(tmp / "clock.json")
        self.config = config
        self.timeline = load_scenario(config.weather_scenario).timeline() if config.weather_scenario else None
        crashes = len(self.timeline.of_kind("driver_crash")) if self.timeline else 0
        self.config_path = tmp / "sim.json"
        self.config_path.write_text(config.to_json())
        env = {CONFIG_ENV: str(self.config_path)}
        if home is not None:
            env["HOME"] = str(home)
        self.home = Path(home) if home is not None else Path.home()
        # the scenario's driver crashes are restarted by indiserver, as a stock indiserver would
        super().__init__([driver_path()], port=port, log_dir=log_dir, env=env,
                         max_restarts=max(max_restarts, crashes))
        self.server_losses: list[ServerLoss] = []
        self._closing = threading.Event()
        self._lock = threading.RLock()
        self._director: threading.Thread | None = None

    def clock(self) -> ClockFollower:
        """A follower of the driver's simulated clock (None from `now()` until the driver wrote it)."""
        return ClockFollower(self.config, self.timeline)

    def start(self, timeout: float = 15.0) -> None:
        with self._lock:
            super().start(timeout)
        if self.timeline and self.timeline.of_kind("server_loss") and self._director is None:
            self._director = threading.Thread(target=self._carry_out_losses, name="sim-server-loss", daemon=True)
            self._director.start()

    def update_config(self, **changes: object) -> None:
        """Change settings for the next driver start (e.g. after a restart test).

        A new `start` or `time_factor` begins a new simulated time: the saved clock is dropped.
        """
        data = json.loads(self.config_path.read_text())
        data.update(changes)
        self.config = SimConfig.from_mapping(data)
        self.config_path.write_text(self.config.to_json())
        if {"start", "time_factor"} & set(changes) and self.config.clock_file:
            with contextlib.suppress(OSError):
                os.unlink(self.config.clock_file)

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        if self._director is not None:
            self._director.join(timeout=10)
        super().__exit__(*exc)

    # ------------------------------------------------------------------ scenario server losses
    def _wait_until(self, follower: ClockFollower, when: datetime) -> bool:
        """Sleep until simulated `when`; False if the server is being closed meanwhile."""
        while not self._closing.is_set():
            now = follower.now()
            if now is not None and now >= when:
                return True
            wall = follower.clock.wall_until(when) if now is not None else POLL_S
            self._closing.wait(min(max(wall, 0.001), POLL_S))
        return False

    def _carry_out_losses(self) -> None:
        assert self.timeline is not None
        follower = self.clock()
        for loss in self.timeline.of_kind("server_loss"):
            record = ServerLoss(loss.at, loss.seconds)
            if not self._wait_until(follower, loss.at):
                return
            with self._lock:
                if self._closing.is_set():
                    return
                record.killed_at = follower.now()
                super().stop(kill=True)
            self.server_losses.append(record)
            if not self._wait_until(follower, loss.end):
                return
            with self._lock:
                if self._closing.is_set():
                    return
                for _ in range(3):  # the port may linger a moment after the kill
                    try:
                        super().start()
                        break
                    except Exception:  # noqa: BLE001 - retried, then left for the log
                        time.sleep(0.5)
                record.restarted_at = follower.now()
