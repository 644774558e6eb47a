"""The simulated observatory for `run --sim` and `serve --sim`: indiserver with our drivers, and
the sequence pointed at the simulator's device names."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import Sequence


@dataclass
class SimRig:
    server: Any
    home: str
    names: dict[str, str]
    weather: str | None = None  # the simulator's weather station, when it runs a scenario

    @property
    def address(self) -> str:
        return str(self.server.address)

    def adapt(self, seq: Sequence) -> Sequence:
        """The sequence with the simulator's device names and address."""
        devices = seq.indi.devices.model_copy(update=self.names)
        update: dict[str, Any] = {"indi": seq.indi.model_copy(update={"devices": devices, "address": self.address})}
        if self.weather is not None:  # the scenario's weather is what the simulated night must see
            update["safety"] = seq.safety.model_copy(update={"weather": [self.weather]})
        return seq.model_copy(update=update)

    def close(self) -> None:
        self.server.__exit__(None, None, None)
        shutil.rmtree(self.home, ignore_errors=True)


def _wait_for_clock(port: int, timeout: float = 60.0) -> None:
    """indiserver opens its port before the simulator's driver has started: until the driver
    publishes its clock, a service would take the real time for the simulated one (and plan another
    night). Wait for the clock."""
    import time

    from agent.devices import IndiClient
    from agent.devices.sim_clock import SimClock
    from agent.errors import IndiError

    client = IndiClient("127.0.0.1", port)
    client.connect()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(client.has(device, SimClock.PROPERTY) for device in client.devices()):
                return
            time.sleep(0.1)
    finally:
        client.disconnect()
    raise IndiError(f"the simulator's driver did not publish its clock within {timeout:.0f} s; "
                    "see the indiserver log in the data folder's logs/")


def start_sim_rig(
    seq: Sequence,
    start: dt.datetime,
    time_factor: float,
    preset: str,
    log_dir: Path,
    weather: Path | None = None,
) -> SimRig:
    from indi_sim.config import SimConfig
    from indi_sim.launch import SimServer

    cfg = SimConfig(
        preset=preset, seed=7, lat=seq.site.latitude, lon=seq.site.longitude,
        elevation=seq.site.elevation, start=start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        time_factor=time_factor, filters=list(seq.filters),
    )
    if weather is not None:
        cfg.weather_scenario = str(weather)
    if preset == "small":
        cfg.width, cfg.height = 512, 384
    home = tempfile.mkdtemp(prefix="obsagent-sim-home-")
    server = SimServer(cfg, log_dir=str(log_dir))
    server.env["HOME"] = home
    server.start()
    try:
        _wait_for_clock(server.port)
    except BaseException:
        server.__exit__(None, None, None)
        shutil.rmtree(home, ignore_errors=True)
        raise
    names = {
        "camera": cfg.camera_name, "wheel": cfg.wheel_name, "flat_panel": cfg.panel_name, "mount": cfg.mount_name,
    }
    return SimRig(server, home, names, weather=cfg.weather_name if weather is not None else None)
