"""The device layer against the real indiserver and the stock INDI simulators."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from agent.devices import Camera, FilterWheel, FlatPanel, IndiClient, Mount, describe
from agent.devices.client import ExposureAborted
from agent.errors import DeviceMissing, IndiError, PropertyMissing, ServerUnreachable
from indi_sim.server import IndiServer, free_port
from tests.indi_fixtures import needs_indiserver

pytestmark = [pytest.mark.indi, needs_indiserver]
CCD = "CCD Simulator"


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_devices_are_found_with_their_capabilities(client: IndiClient) -> None:
    caps = {d: describe(client, d).capabilities for d in client.devices()}
    assert "camera" in caps[CCD]
    assert "wheel" in caps["Filter Simulator"]
    assert "lightbox" in caps["Light Panel Simulator"]
    assert "mount" in caps["Telescope Simulator"]


def test_devices_command_json(stock_server: IndiServer) -> None:
    result = run_cli("devices", "--indi", stock_server.address, "--json")
    assert result.returncode == 0, result.stderr
    names = {d["name"]: d for d in json.loads(result.stdout)}
    assert "camera" in names[CCD]["capabilities"]


@pytest.mark.parametrize("frame_type", ["light", "dark", "bias", "flat", "darkflat"])
def test_capture_writes_fits_with_complete_header(stock_server: IndiServer, tmp_path: Path, frame_type: str) -> None:
    result = run_cli(
        "capture", "--indi", stock_server.address, "--type", frame_type, "--exposure", "0.2", "--count", "2",
        "--filter", "Blue", "--gain", "42", "--offset", "7", "--bin", "2", "--out", str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("*.fits"))
    assert len(files) == 2
    with fits.open(files[0]) as hdul:
        header = hdul[0].header
        data = hdul[0].data
    assert data.dtype == np.uint16
    assert data.shape == (512, 640)  # 1280x1024 binned 2x2
    expected_type = {"light": "Light Frame", "dark": "Dark Frame", "bias": "Bias Frame",
                     "flat": "Flat Field", "darkflat": "Dark Flat"}[frame_type]
    assert header["IMAGETYP"] == expected_type
    if frame_type == "bias":  # drivers take a bias at their shortest exposure and say so
        assert 0 <= header["EXPTIME"] <= 0.2
    else:
        assert header["EXPTIME"] == pytest.approx(0.2)
    assert header["GAIN"] == 42 and header["OFFSET"] == 7
    assert header["XBINNING"] == 2 and header["YBINNING"] == 2
    assert header["FILTER"] == "Blue"
    assert header["INSTRUME"] == CCD
    assert "DATE-OBS" in header and "CCD-TEMP" in header
    # its CCD_CAPTURE_FORMAT ("Mono") is the pixel format, never a readout mode (indiccd.cpp)
    assert "READOUTM" not in header
    if frame_type in ("light", "flat"):
        assert "Blue" in files[0].name


def test_capture_waits_for_set_point_and_records_it(stock_server: IndiServer, tmp_path: Path) -> None:
    result = run_cli(
        "capture", "--indi", stock_server.address, "--type", "dark", "--exposure", "0.1",
        "--temperature", "-2", "--out", str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    header = fits.getheader(next(tmp_path.glob("*.fits")))
    assert header["SET-TEMP"] == -2
    assert abs(header["CCD-TEMP"] - -2) <= 0.5


def test_unreachable_server_is_one_line_exit_2() -> None:
    result = run_cli("devices", "--indi", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "cannot reach the INDI server" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_device_is_one_line_exit_2(stock_server: IndiServer, tmp_path: Path) -> None:
    result = run_cli(
        "capture", "--indi", stock_server.address, "--camera", "No Such Cam", "--type", "dark",
        "--exposure", "0.1", "--out", str(tmp_path),
    )
    assert result.returncode == 2
    assert "No Such Cam" in result.stderr and "Traceback" not in result.stderr


def test_wheel_moves_by_name(client: IndiClient) -> None:
    wheel = FilterWheel(client, "Filter Simulator")
    wheel.connect()
    wheel.move_to("OIII")
    assert wheel.current() == "OIII"
    wheel.move_to("red")  # names match case-insensitively
    assert wheel.slot() == 1
    with pytest.raises(IndiError, match="not in Filter Simulator"):
        wheel.move_to("Nope")


def test_light_panel_on_off_and_brightness(client: IndiClient) -> None:
    panel = FlatPanel(client, "Light Panel Simulator")
    panel.connect()
    panel.light(True)
    panel.set_brightness(123)
    assert panel.light_on() and panel.brightness() == 123
    panel.light(False)
    assert not panel.light_on()
    assert not panel.has_cap  # the stock simulator is a light box without a dust cap
    with pytest.raises(PropertyMissing, match="no dust cap"):
        panel.close_cap()


def test_mount_park_unpark_and_tracking(client: IndiClient) -> None:
    mount = Mount(client, "Telescope Simulator")
    mount.connect()
    # Park where it stands so the simulator does not spend its time slewing.
    client.wait_property(mount.name, "TELESCOPE_PARK_OPTION")
    client.set_switch(mount.name, "TELESCOPE_PARK_OPTION", ["PARK_CURRENT"])
    mount.park()
    assert mount.parked()
    mount.unpark()
    assert not mount.parked()
    mount.set_tracking(True)
    assert mount.tracking()
    mount.set_tracking(False)
    assert not mount.tracking()


def test_abort_mid_exposure_returns_at_once(client: IndiClient) -> None:
    cam = Camera(client, CCD)
    cam.connect()
    timer = threading.Timer(0.5, cam.abort)
    timer.start()
    start = time.monotonic()
    with pytest.raises(ExposureAborted):
        cam.expose(60)
    assert time.monotonic() - start < 3
    frame = cam.expose(0.1)  # the camera is usable again
    assert frame.data.size > 0


def test_server_restart_then_next_capture_works(tmp_path: Path) -> None:
    with IndiServer(["indi_simulator_ccd"], env={"HOME": str(tmp_path)}) as server:
        c = IndiClient("127.0.0.1", server.port)
        c.connect()
        cam = Camera(c, CCD)
        cam.connect()
        cam.expose(0.1)
        server.stop()
        with pytest.raises(IndiError):
            cam.expose(0.1)  # fails fast: the server is gone
        server.start()
        c.reconnect(deadline_s=20)
        cam.connect()
        frame = cam.expose(0.1)
        assert frame.data.shape == (1024, 1280)
        c.disconnect()


def test_reconnect_gives_up_with_clear_error(tmp_path: Path) -> None:
    c = IndiClient("127.0.0.1", free_port())
    with pytest.raises(ServerUnreachable, match="did not come back"):
        c.reconnect(deadline_s=1.0, first_delay=0.2)


def test_driver_crash_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    with IndiServer(["indi_simulator_ccd"], env={"HOME": str(tmp_path)}) as server:
        c = IndiClient("127.0.0.1", server.port)
        c.connect()
        cam = Camera(c, CCD)
        cam.connect()
        c.set_switch(CCD, "CCD_SIMULATE_CRASH", ["CRASH"], wait=False)
        start = time.monotonic()
        with pytest.raises(IndiError, match="CCD Simulator"):
            cam.expose(0.5)
            cam.expose(0.5)
        assert time.monotonic() - start < 35
        with pytest.raises(DeviceMissing):
            c.wait_devices([CCD], timeout=1)
        c.disconnect()
