"""Start indiserver with the simulator driver and a given configuration."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from indi_sim.config import CONFIG_ENV, SimConfig, driver_path
from indi_sim.server import IndiServer


class SimServer(IndiServer):
    """An `IndiServer` running `indi_obsagent_sim` with `config` written to a private JSON file.

    The driver keeps its devices' settings in `home`/.indi like a real driver keeps them in
    ~/.indi (`indi_sim.persist`); None = the user's HOME. Two servers given the same `home` see
    what the first left behind.
    """

    def __init__(self, config: SimConfig, port: int | None = None, max_restarts: int = 0,
                 log_dir: str | None = None, home: str | os.PathLike[str] | None = None) -> None:
        config.validate()
        self.config = config
        tmp = Path(tempfile.mkdtemp(prefix="obsagent-sim-"))
        self.config_path = tmp / "sim.json"
        self.config_path.write_text(config.to_json())
        env = {CONFIG_ENV: str(self.config_path)}
        if home is not None:
            env["HOME"] = str(home)
        self.home = Path(home) if home is not None else Path.home()
        super().__init__([driver_path()], port=port, log_dir=log_dir, env=env, max_restarts=max_restarts)

    def update_config(self, **changes: object) -> None:
        """Change settings for the next driver start (e.g. after a restart test)."""
        data = json.loads(self.config_path.read_text())
        data.update(changes)
        self.config = SimConfig.from_mapping(data)
        self.config_path.write_text(self.config.to_json())
