"""`camera.bit_depth` is checked against what the camera says it sends, at the start of the night.

Against the simulator (CCD_INFO follows the capture format, as ZWO's driver does) and a driver that
publishes ZWO's ADC_DEPTH beside CCD_INFO."""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.devices import IndiClient
from agent.devices.hygiene import bit_depth_problem
from indi_sim.server import IndiServer
from tests.indi_fixtures import needs_indiserver
from tests.sim_fixtures import sim_rig, sim_server  # noqa: F401

pytestmark = [pytest.mark.indi, needs_indiserver]
DRIVER = Path(__file__).parent / "drivers" / "adc_depth_camera.py"


def test_declared_depth_against_the_simulators_capture_format(sim_rig: Callable[..., object]) -> None:  # noqa: F811
    rig = sim_rig()
    cam = rig.camera  # type: ignore[attr-defined]
    cam.prepare(binning=1)  # 16-bit raw
    for fits_in_16 in (None, 16, 14, 12, 10):
        assert bit_depth_problem(cam.client, cam.name, fits_in_16) is None
    line = bit_depth_problem(cam.client, cam.name, 8)
    assert line is not None and "sends 16-bit pixels" in line and "\n" not in line
    cam.client.set_switch(cam.name, "CCD_CAPTURE_FORMAT", ["RAW8"])  # another client left 8-bit capture
    cam.client.wait_for(cam.name, "CCD_INFO", lambda s: int(s.values["CCD_BITSPERPIXEL"]) == 8, 5.0, "8-bit")
    assert bit_depth_problem(cam.client, cam.name, 8) is None
    line = bit_depth_problem(cam.client, cam.name, 16)
    assert line is not None and "camera.bit_depth is 16" in line and "8-bit pixels" in line


@pytest.mark.parametrize(
    ("adc", "declared", "refused"),
    [("14", 14, False), ("14", 16, False), ("14", 12, True), ("16", 12, False), ("12", 12, False)],
    ids=["adc-14", "pixels-16", "wrong-adc", "adc-not-narrower", "adc-12"],
)
def test_declared_depth_against_a_published_adc_depth(
    tmp_path: Path, adc: str, declared: int, refused: bool
) -> None:
    launcher = tmp_path / "indi_adc_ccd"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {DRIVER}\n")
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    with IndiServer([str(launcher)], env={"ADC_BITS": adc, "HOME": str(tmp_path)}) as server:
        client = IndiClient("127.0.0.1", server.port)
        client.connect()
        try:
            client.wait_property("ADC CCD", "ADC_DEPTH", timeout=10.0)
            line = bit_depth_problem(client, "ADC CCD", declared)
        finally:
            client.disconnect()
    assert (line is not None) is refused, line
    if refused:
        assert line is not None and f"{adc}-bit ADC" in line
