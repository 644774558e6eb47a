"""Panels against replay profiles: Alnitak Flip-Flat (indi drivers/auxiliary/flip_flat.cpp), Deep Sky
Dad FP (deepskydad_fp.cpp), a light-only Pegasus FlatMaster (pegasus_flatmaster.cpp, with the LightBox
interface's per-filter presets, indilightboxinterface.cpp) plus an Alnitak dust cover; the DustCap
interface (indidustcapinterface.cpp) starts with both CAP_PARK switches off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main as cli
from agent.devices import IndiClient
from agent.devices.flatpanel import FlatPanel
from agent.errors import PropertyAlert
from indi_sim.replay.launch import ReplayServer
from tests.indi_fixtures import needs_indiserver

pytestmark = [pytest.mark.indi, needs_indiserver]
SETUPS = {"flipflat": ("Flip Flat", None), "dsd_fp": ("Deep Sky Dad FP", None),
          "pegasus_light+alnitak_cover": ("Pegasus FlatMaster", "Alnitak Dust Cover")}


@pytest.fixture(scope="module", params=list(SETUPS))
def panel_server(request: pytest.FixtureRequest) -> Iterator[ReplayServer]:
    with ReplayServer(["asi_cooled", *request.param.split("+")], time_factor=200) as server:
        server.panel, server.cap = SETUPS[request.param]  # type: ignore[attr-defined]
        yield server


def test_unknown_cap_is_unknown_then_commanded(panel_server: ReplayServer) -> None:
    with IndiClient("127.0.0.1", panel_server.port) as client:
        panel = FlatPanel(client, panel_server.panel, cap_device=panel_server.cap)  # type: ignore[attr-defined]
        panel.connect()
        assert panel.has_cap
        assert panel.cap_closed() is None  # both CAP_PARK switches off: not "open"
        panel.ensure_open()
        assert panel.cap_closed() is False
        panel.ensure_closed()
        assert panel.cap_closed() is True


def test_stale_alert_belongs_to_the_refused_command(panel_server: ReplayServer) -> None:
    if panel_server.panel != "Flip Flat":  # type: ignore[attr-defined]
        pytest.skip("only the Flip-Flat refuses the light while open")
    with IndiClient("127.0.0.1", panel_server.port) as client:
        panel = FlatPanel(client, "Flip Flat")
        panel.connect()
        panel.ensure_open()
        with pytest.raises(PropertyAlert, match="unparked"):
            panel.light(True)
        panel.close_cap()
        panel.light(True)  # the Alert left on FLAT_LIGHT_CONTROL is not this command's
        assert panel.light_on()
        panel.light(False)


def test_filter_presets_are_switched_off(panel_server: ReplayServer) -> None:
    with IndiClient("127.0.0.1", panel_server.port) as client:
        panel = FlatPanel(client, panel_server.panel, cap_device=panel_server.cap)  # type: ignore[attr-defined]
        panel.connect()
        if client.has(panel.name, "FLAT_LIGHT_FILTER_INTENSITY"):
            assert not any(client.get(panel.name, "FLAT_LIGHT_FILTER_INTENSITY").values.values())
        panel.set_brightness(120)
        assert panel.brightness() == 120


def test_panel_flats(panel_server: ReplayServer, tmp_path: Path) -> None:
    args = ["flats", "--indi", panel_server.address, "--source", "panel", "--filters", "L", "--count", "2",
            "--panel", panel_server.panel, "--out", str(tmp_path / "flats"), "--data", str(tmp_path / "data"),  # type: ignore[attr-defined]
            "--no-dark-flats"]
    if panel_server.cap:  # type: ignore[attr-defined]
        args += ["--dust-cap", panel_server.cap]  # type: ignore[attr-defined]
    assert cli(args) == 0
    assert len(list((tmp_path / "flats").rglob("*.fits"))) == 2
