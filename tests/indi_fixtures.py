"""Fixtures that start the real indiserver with the stock INDI simulators on a free port."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.devices import IndiClient
from indi_sim.server import STOCK_SIMULATORS, IndiServer

needs_indiserver = pytest.mark.skipif(
    shutil.which("indiserver") is None, reason="indiserver missing: run `make test`, which installs indi-bin"
)


@pytest.fixture(scope="module")
def stock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndiServer]:
    """indiserver + the four stock simulators; HOME points at a temp dir so driver configs stay out of ~."""
    home: Path = tmp_path_factory.mktemp("indi-home")
    server = IndiServer(STOCK_SIMULATORS, env={"HOME": str(home)})
    with server:
        yield server


@pytest.fixture
def client(stock_server: IndiServer) -> Iterator[IndiClient]:
    if stock_server.proc is None or stock_server.proc.poll() is not None:
        stock_server.start()
    c = IndiClient("127.0.0.1", stock_server.port)
    c.connect()
    c.wait_devices(["CCD Simulator", "Filter Simulator", "Light Panel Simulator", "Telescope Simulator"])
    c.wait_driver_info()
    yield c
    c.disconnect()
