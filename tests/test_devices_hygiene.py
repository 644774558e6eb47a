"""A camera left compressed, native, sub-framed or uploading locally by another client still gives
full-frame 16-bit FITS. Follows libindi `libs/indibase/indiccd.cpp` (CCD_COMPRESSION, CCD_TRANSFER_FORMAT,
UPLOAD_MODE, CCD_FRAME kept in the driver's config) against the stock CCD simulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from agent.devices import IndiClient
from indi_sim.server import IndiServer
from tests.indi_fixtures import needs_indiserver, stock_server  # noqa: F401

pytestmark = [pytest.mark.indi, needs_indiserver]
CCD = "CCD Simulator"


def leave_behind(server: IndiServer, switches: dict[str, str], frame: dict[str, float] | None = None) -> None:
    """What Ekos leaves in the driver: set through a client that then goes away."""
    with IndiClient("127.0.0.1", server.port) as other:
        other.connect_device(CCD)
        for prop, element in switches.items():
            other.set_switch(CCD, prop, [element])
        if frame:
            other.set_number(CCD, "CCD_FRAME", frame)


@pytest.mark.parametrize(
    "left",
    [
        {"CCD_COMPRESSION": "INDI_ENABLED"},  # pyindi-client's getblobdata() would crash the process
        {"CCD_TRANSFER_FORMAT": "FORMAT_NATIVE"},
        {"UPLOAD_MODE": "UPLOAD_LOCAL"},
        {},  # a sub-frame only
    ],
    ids=["compressed", "native", "local-upload", "subframe"],
)
def test_capture_after_another_client_left_settings(stock_server: IndiServer, tmp_path: Path, left: dict[str, str]) -> None:  # noqa: F811
    leave_behind(stock_server, left, frame={"X": 100, "Y": 50, "WIDTH": 320, "HEIGHT": 200})
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "capture", "--indi", stock_server.address, "--type", "dark",
         "--exposure", "0.1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (path,) = tmp_path.glob("*.fits")
    with fits.open(path) as hdul:
        assert hdul[0].data.dtype == np.uint16
        assert hdul[0].data.shape == (1024, 1280)


def test_compressed_blob_is_read_with_its_real_length(stock_server: IndiServer) -> None:  # noqa: F811
    """Compression left on *during* capture: the fpack'd BLOB is decoded, not a crash."""
    from agent.devices import Camera

    with IndiClient("127.0.0.1", stock_server.port) as client:
        cam = Camera(client, CCD)
        cam.connect()
        client.set_switch(CCD, "CCD_COMPRESSION", ["INDI_ENABLED"])
        # expose() notices the changed setting and restores it; bypass that to get a compressed BLOB
        mark = client.blob_mark(CCD, "CCD1")
        client.send_number(CCD, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 0.1})
        arrival = client.wait_blob(CCD, "CCD1", mark, 30)
        assert arrival.fmt == ".fits.fz"
        from agent.devices.frame import decode_fits_blob

        data, header = decode_fits_blob(arrival.data, CCD, arrival.fmt)
        assert data.shape == (1024, 1280)
        frame = cam.expose(0.1, "dark")  # and the camera puts compression off again itself
        assert frame.data.shape == (1024, 1280)
        assert client.get(CCD, "CCD_COMPRESSION").values["INDI_DISABLED"]
