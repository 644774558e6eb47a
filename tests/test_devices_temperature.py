"""A cooler whose CCD_TEMPERATURE stops changing is noticed (`Camera.temperature_frozen`).

A driver whose temperature query fails keeps publishing its last good value; darks would then
be filed under a temperature the sensor is not at. The simulator's FAULT_TEMPERATURE_FROZEN does
exactly that (the sensor keeps cooling, the reading and CCD-TEMP stay put).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from agent.devices.temperature import TemperatureWatch
from tests import sim_fixtures
from tests.sim_fixtures import needs_indiserver

sim_server = sim_fixtures.sim_server
sim_rig = sim_fixtures.sim_rig

pytestmark = [pytest.mark.indi, needs_indiserver]
WINDOW_S = 2.0  # the watch's 10 minutes, shortened


def watch_for(cam: Any, seconds: float) -> bool:
    """Ask the camera every 0.25 s for `seconds`; True as soon as it calls the reading frozen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cam.temperature_frozen():
            return True
        time.sleep(0.25)
    return False


def test_frozen_reading_while_cooling_is_detected(sim_rig: Callable[..., Any]) -> None:
    rig = sim_rig(time_factor=60, faults=["FAULT_TEMPERATURE_FROZEN"])
    cam = rig.camera
    cam.temperature_watch = TemperatureWatch(window_s=WINDOW_S)
    stuck = cam.temperature()
    cam.set_temperature(-10.0)
    assert watch_for(cam, WINDOW_S + 4.0)
    assert cam.temperature() == stuck  # the sensor cooled by now; the reading says it did not
    assert float(cam.expose(1, "dark").header["CCD-TEMP"]) == pytest.approx(stuck, abs=0.01)


def test_a_live_reading_is_not_frozen(sim_rig: Callable[..., Any]) -> None:
    rig = sim_rig(time_factor=60)
    cam = rig.camera
    cam.temperature_watch = TemperatureWatch(window_s=WINDOW_S)
    start = cam.temperature()
    cam.set_temperature(-10.0)
    assert not watch_for(cam, WINDOW_S + 3.0)
    assert cam.temperature() != start
