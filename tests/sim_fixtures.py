"""Pytest fixtures that run the simulated observatory under a real indiserver.

Import what you need into a test module: `from tests.sim_fixtures import sim_server, sim_rig  # noqa: F401`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indi_sim.config import SimConfig
from indi_sim.launch import SimServer

# Small frames keep rig tests fast; a dusk start gives a Sun a few degrees above the horizon at the default site.
TEST_DEFAULTS: dict[str, object] = {
    "preset": "small", "width": 256, "height": 192, "seed": 11,
    "start": "2026-12-01T15:30:00", "time_factor": 1.0, "connected": False,
}

needs_indiserver = pytest.mark.skipif(shutil.which("indiserver") is None, reason="indiserver (indi-bin) not installed")


@pytest.fixture
def sim_server(tmp_path: Path) -> Iterator[Callable[..., SimServer]]:
    """Factory: `sim_server(time_factor=60, preset="ccd")` starts a server and stops it after the test.

    The driver's HOME is `tmp_path/home` (its device configs in `home/.indi`), shared by the servers
    of one test and never the user's: pass `home=...` to choose another.
    """
    servers: list[SimServer] = []

    def start(home: Path | None = None, **overrides: object) -> SimServer:
        cfg = SimConfig.from_mapping({**TEST_DEFAULTS, **overrides}, "test simulator config")
        server = SimServer(cfg, log_dir=str(tmp_path), home=home or tmp_path / "home")
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def sim_rig(sim_server: Callable[..., SimServer]) -> Callable[..., object]:
    """Factory: start a simulator and return a connected `agent.devices.rig.Rig` (with wheel, panel, mount)."""
    from agent.devices import IndiClient
    from agent.devices.rig import connect_rig

    clients: list[IndiClient] = []

    def make(**overrides: object) -> object:
        server = sim_server(**overrides)
        client = IndiClient("127.0.0.1", server.port)
        client.connect()
        clients.append(client)
        client.wait_devices([server.config.camera_name, server.config.wheel_name, server.config.panel_name,
                             server.config.mount_name], timeout=15.0)
        rig = connect_rig(client, camera=server.config.camera_name, wheel=server.config.wheel_name,
                          panel=server.config.panel_name, mount=server.config.mount_name)
        rig.camera.time_factor = server.config.time_factor
        rig.server = server  # type: ignore[attr-defined]
        return rig

    yield make  # type: ignore[misc]
    for client in clients:
        client.disconnect()
