"""indi_sim behaves like a real INDI driver, not like a simulator written for obsagent.

- Properties come with CONNECT (libindi `updateProperties`): before it only CONNECTION, DRIVER_INFO
  and the simulation controls; DISCONNECT deletes them again.
- Settings stay in `~/.indi/<device>_config.xml` between runs (libindi `saveConfig`/`loadConfig`),
  so what another client left (compression, native transfer, 8-bit, local upload, a sub-frame) is
  what the next one finds, and capture hygiene must undo it.
- Readout modes are Player One's SENSOR_MODE (indi-playerone/playerone_base.cpp); CCD_CAPTURE_FORMAT
  is the pixel format.
- The panel refuses the light while its cap is open, as the Alnitak Flip-Flat (flip_flat.cpp).
- The mount publishes TELESCOPE_PIER_SIDE and takes a site and a time.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.devices import IndiClient
from agent.devices.rig import connect_rig
from agent.errors import PropertyAlert
from tests import sim_fixtures
from tests.sim_fixtures import needs_indiserver

sim_server = sim_fixtures.sim_server
sim_rig = sim_fixtures.sim_rig

pytestmark = [pytest.mark.indi, needs_indiserver]
CAM = "Sim Camera"


def test_properties_come_with_connect_and_go_with_disconnect(sim_server: Callable[..., Any]) -> None:
    server = sim_server()
    with IndiClient("127.0.0.1", server.port) as client:
        client.wait_devices([CAM, "Sim Mount"], timeout=15)
        client.settle(quiet=0.5)
        before = {name for (dev, name) in client._props if dev == CAM}
        assert before == {"CONNECTION", "DRIVER_INFO", "SIM_FAULTS"}
        assert not client.has("Sim Mount", "EQUATORIAL_EOD_COORD")
        client.connect_device(CAM)
        for prop in ("CCD_EXPOSURE", "CCD1", "CCD_CAPTURE_FORMAT", "SENSOR_MODE", "CCD_COMPRESSION",
                     "CCD_TRANSFER_FORMAT", "UPLOAD_MODE", "CCD_TEMPERATURE"):
            assert client.has(CAM, prop), prop
        client.set_switch(CAM, "CONNECTION", ["DISCONNECT"])
        client.wait_for(CAM, "CONNECTION", lambda s: bool(s.values.get("DISCONNECT")), 10, "disconnect")
        client.settle(quiet=0.5)
        assert not client.has(CAM, "CCD_EXPOSURE")
        assert client.has(CAM, "SIM_FAULTS")


def leave_behind(port: int) -> None:
    """What Ekos or another client leaves in the driver: set, then the client goes away."""
    with IndiClient("127.0.0.1", port) as other:
        other.wait_devices([CAM], timeout=15)
        other.connect_device(CAM)
        other.set_switch(CAM, "CCD_COMPRESSION", ["INDI_ENABLED"])
        other.set_switch(CAM, "CCD_TRANSFER_FORMAT", ["FORMAT_NATIVE"])
        other.set_switch(CAM, "CCD_CAPTURE_FORMAT", ["RAW8"])
        other.set_number(CAM, "CCD_FRAME", {"X": 32, "Y": 16, "WIDTH": 96, "HEIGHT": 64})
        other.set_switch(CAM, "SENSOR_MODE", ["MODE_1"])


def test_settings_left_by_another_client_survive_a_restart_and_capture_undoes_them(
    sim_server: Callable[..., Any], tmp_path: Path
) -> None:
    home = tmp_path / "shared-home"
    first = sim_server(home=home, time_factor=60)
    leave_behind(first.port)
    first.stop()
    saved = ET.parse(home / ".indi" / "Sim_Camera_config.xml").getroot()
    assert {v.get("name") for v in saved} >= {"CCD_COMPRESSION", "CCD_TRANSFER_FORMAT", "CCD_FRAME"}

    second = sim_server(home=home, time_factor=60)  # a new driver process: only the config remembers
    with IndiClient("127.0.0.1", second.port) as client:
        client.wait_devices([CAM], timeout=15)
        client.connect_device(CAM)
        assert client.get(CAM, "CCD_COMPRESSION").values["INDI_ENABLED"]
        assert client.get(CAM, "CCD_TRANSFER_FORMAT").values["FORMAT_NATIVE"]
        assert client.get(CAM, "CCD_CAPTURE_FORMAT").values["RAW8"]
        assert int(client.get(CAM, "CCD_FRAME").values["WIDTH"]) == 96
        # what a client without hygiene gets: a compressed raw buffer of 8-bit pixels
        client.enable_blob(CAM, "CCD1")
        mark = client.blob_mark(CAM, "CCD1")
        client.send_number(CAM, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 1})
        assert client.wait_blob(CAM, "CCD1", mark, 30).fmt == ".raw.z"

        rig = connect_rig(client, camera=CAM)
        frame = rig.camera.expose(1, "dark")
        assert frame.data.dtype == np.uint16 and frame.data.shape == (192, 256)
        assert frame.header["READOUTM"] == "Low noise"  # the readout mode is not hygiene's: it stays
    values = {v.get("name"): {o.get("name"): o.text for o in v}
              for v in ET.parse(home / ".indi" / "Sim_Camera_config.xml").getroot()}
    assert values["CCD_COMPRESSION"]["INDI_DISABLED"] == "On"
    assert values["CCD_CAPTURE_FORMAT"]["RAW16"] == "On"


def test_local_upload_left_behind_sends_no_image_until_hygiene(sim_server: Callable[..., Any]) -> None:
    server = sim_server(time_factor=60)
    with IndiClient("127.0.0.1", server.port) as client:
        client.wait_devices([CAM], timeout=15)
        client.connect_device(CAM)
        client.set_switch(CAM, "UPLOAD_MODE", ["UPLOAD_LOCAL"])
        client.enable_blob(CAM, "CCD1")
        mark = client.blob_mark(CAM, "CCD1")
        client.send_number(CAM, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 1})
        client.wait_for(CAM, "CCD_EXPOSURE", lambda s: s.state == "Ok", 10, "the exposure to end")
        with pytest.raises(Exception, match="timed out"):
            client.wait_blob(CAM, "CCD1", mark, 1.5)
        rig = connect_rig(client, camera=CAM)
        assert rig.camera.expose(1, "bias").data.shape == (192, 256)


def test_readout_modes_are_player_one_sensor_modes(sim_rig: Callable[..., Any]) -> None:
    rig = sim_rig(time_factor=60, cosmic_rays=False)
    cam = rig.camera
    assert cam.modes.kind == "SENSOR_MODE"
    assert cam.readout_modes() == ("Normal", "Low noise")
    noise = {}
    for mode in ("Normal", "Low noise"):
        cam.set_readout_mode(mode)
        a, b = (cam.expose(0, "bias") for _ in range(2))
        assert a.header["READOUTM"] == mode
        noise[mode] = float(np.std(a.data.astype(np.float64) - b.data.astype(np.float64)))
    assert noise["Low noise"] < 0.85 * noise["Normal"]  # the model's low-noise mode reads with 0.7x the noise
    capture = rig.client.get(CAM, "CCD_CAPTURE_FORMAT")
    assert capture.labels["RAW16"] == "Raw 16 bit" and capture.values["RAW16"]


def test_flip_flat_refuses_the_light_while_open_and_the_alert_stays(sim_rig: Callable[..., Any]) -> None:
    rig = sim_rig(time_factor=20)
    panel = rig.panel
    panel.open_cap()
    with pytest.raises(PropertyAlert, match="unparked"):
        panel.light(True)
    snap = rig.client.get(panel.name, "FLAT_LIGHT_CONTROL")
    assert snap.state == "Alert" and snap.values["FLAT_LIGHT_OFF"]
    panel.light(False)  # off already: nothing to refuse
    panel.ensure_closed()
    panel.light(True)  # the Alert left on the property is not this command's
    assert panel.light_on()


def test_mount_pier_side_follows_the_meridian_and_takes_a_site(sim_rig: Callable[..., Any]) -> None:
    rig = sim_rig(time_factor=60)
    mount = rig.mount
    assert mount.push_site_and_time(48.2, 16.4, 200.0) == []
    mount.unpark()
    lst_h = _lst_hours(rig)
    sides = {}
    # pointing east: the tube is on the west side (the side is published a moment after the slew)
    for name, ha, expected in (("east", -3.0, "WEST"), ("west", 3.0, "EAST")):
        mount.goto_radec((lst_h - ha) % 24, 30.0)
        deadline = time.monotonic() + 10
        while mount.pier_side() != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        sides[name] = mount.pier_side()
        assert mount.pointing_header()["PIERSIDE"][0] == sides[name]
    assert sides == {"east": "WEST", "west": "EAST"}


def _lst_hours(rig: Any) -> float:
    from datetime import datetime

    from indi_sim import astro

    utc = rig.client.get(rig.server.config.clock_name, "SIM_CLOCK").values["UTC"]
    when = datetime.fromisoformat(utc + "+00:00")
    return astro.local_sidereal_time_deg(when, rig.server.config.lon) / 15.0
