"""obsagent against replay drivers copying real drivers' layouts (`indi_sim/replay/profiles.py`).

Each camera profile names its source: ZWO ASI (indi-asi/asi_base.cpp, cooled and uncooled),
QHY with and without a CFW (indi-qhy/qhy_ccd.cpp), Player One (indi-playerone/playerone_base.cpp),
Touptek (indi-toupbase/indi_toupbase.cpp), Atik Horizon (indi-atik/atik_ccd.cpp), SBIG
(indi-sbig/sbig_ccd.cpp); panels: Alnitak Flip-Flat (flip_flat.cpp), Deep Sky Dad FP
(deepskydad_fp.cpp), a light-only Pegasus FlatMaster with LightBox filter presets
(pegasus_flatmaster.cpp, indilightboxinterface.cpp) plus an Alnitak dust cover; mount: EQMod.
Each camera starts with what another client left in its config (compression, native, local
upload, a sub-frame, 8-bit).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from agent.cli import main as cli
from agent.devices import IndiClient
from agent.devices.rig import connect_rig
from indi_sim.replay.launch import ReplayServer
from indi_sim.replay.profiles import CAMERAS, PROFILES
from tests.indi_fixtures import needs_indiserver

pytestmark = [pytest.mark.indi, needs_indiserver]

READOUT = {  # profile -> (readout modes the agent lists, two of them to set)
    "qhy_wheel": (("0", "1", "2", "3"), ("0", "2")),
    "qhy_nowheel": (("0", "1", "2", "3"), ("1", "3")),
    "playerone": (("Normal", "LowNoise"), ("Normal", "LowNoise")),
    "touptek": (None, ("HCG", "LCG+LowNoise")),
    "atik_horizon": (("Custom", "Low"), ("Custom", "Low")),
}


@pytest.fixture(scope="module", params=CAMERAS)
def rig_server(request: pytest.FixtureRequest) -> Iterator[ReplayServer]:
    with ReplayServer([request.param, "eqmod"], time_factor=200) as server:
        server.camera = PROFILES[request.param].device  # type: ignore[attr-defined]
        server.key = request.param  # type: ignore[attr-defined]
        yield server


def test_devices_lists_capabilities_after_connecting(rig_server: ReplayServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["devices", "--indi", rig_server.address, "--connect", "--json"]) == 0
    found = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    cam = found[rig_server.camera]  # type: ignore[attr-defined]
    assert "camera" in cam["capabilities"]
    has_wheel = rig_server.key == "qhy_wheel"  # type: ignore[attr-defined]
    # QHY and SBIG set the filter bit without a CFW: a wheel is only a defined FILTER_SLOT
    assert ("filter_slots" in cam["settings"]) == has_wheel
    expected_modes = READOUT.get(rig_server.key, ((),))[0]  # type: ignore[attr-defined]
    if expected_modes is not None:
        assert tuple(cam["settings"].get("readout_modes", ())) == expected_modes


@pytest.mark.parametrize("frame_type", ["light", "dark", "bias", "flat", "darkflat"])
def test_capture_every_frame_type_full_frame_16_bit(rig_server: ReplayServer, tmp_path: Path, frame_type: str) -> None:
    assert cli(["capture", "--indi", rig_server.address, "--type", frame_type, "--exposure", "2",
                "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.fits")
    with fits.open(path) as hdul:
        assert hdul[0].data.dtype == np.uint16
        assert hdul[0].data.shape == (96, 128)


def test_uncooled_camera_has_no_set_point_wait(rig_server: ReplayServer) -> None:
    with IndiClient("127.0.0.1", rig_server.port) as client:
        cam = connect_rig(client, camera=rig_server.camera).camera  # type: ignore[attr-defined]
        cooled = rig_server.key != "asi_uncooled"  # type: ignore[attr-defined]
        assert cam.is_cooled() == cooled
        assert cam.info().has_gain == (rig_server.key != "sbig")  # type: ignore[attr-defined]
        if not cooled:
            assert cam.wait_temperature(-10, timeout=1.0) > 0  # returns the reading at once
            frame = cam.expose(1.0, "dark")
            assert frame.header["COOLED"] is False and "CCD-TEMP" in frame.header


def test_two_readout_modes_are_two_fits_values(rig_server: ReplayServer) -> None:
    key = rig_server.key  # type: ignore[attr-defined]
    if key not in READOUT:
        pytest.skip("this driver has no readout modes")
    first, second = READOUT[key][1]
    with IndiClient("127.0.0.1", rig_server.port) as client:
        cam = connect_rig(client, camera=rig_server.camera).camera  # type: ignore[attr-defined]
        assert cam.modes.kind != "CCD_CAPTURE_FORMAT"
        modes = []
        for mode in (first, second):
            cam.set_readout_mode(mode)
            modes.append(cam.expose(1.0, "dark").header["READOUTM"])
    assert modes[0] != modes[1]
    assert {m.lower().replace(" ", "") for m in modes} == {first.lower(), second.lower()}


def test_mount_takes_site_and_time_and_lights_get_pointing(rig_server: ReplayServer) -> None:
    with IndiClient("127.0.0.1", rig_server.port) as client:
        rig = connect_rig(client, camera=rig_server.camera, mount="EQMod Mount")  # type: ignore[attr-defined]
        assert rig.mount is not None
        assert rig.mount.push_site_and_time(48.2, 16.4, 180.0) == []
        lat, lon, _ = rig.mount.site()
        assert (round(lat, 3), round(lon, 3)) == (48.2, 16.4)
        cards = rig.mount.pointing_header()
        assert {"RA", "DEC", "OBJCTRA", "OBJCTDEC", "PIERSIDE", "AIRMASS"} <= set(cards)
