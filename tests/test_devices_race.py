"""A driver updating a property while we write a new value never makes us send its value.

Seen in whole nights: "ALERT on CCD_EXPOSURE: exposure 0.0 s outside 0.0001..3600.0 s" right after a
short flat exposure, because our exposure was written into libindi's copy of CCD_EXPOSURE while the
driver's countdown update (value 0) was being applied to the same copy on libindi's thread.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

from agent.devices import IndiClient
from indi_sim.server import IndiServer
from tests.indi_fixtures import needs_indiserver

DRIVER = Path(__file__).parent / "drivers" / "racing_exposure.py"


@needs_indiserver
def test_sent_exposure_is_ours_while_the_driver_counts_down(tmp_path: Path) -> None:
    log = tmp_path / "received.txt"
    launcher = tmp_path / "indi_race_ccd"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {DRIVER}\n")
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    with IndiServer([str(launcher)], env={"RACE_LOG": str(log), "HOME": str(tmp_path)}) as server:
        client = IndiClient("127.0.0.1", server.port)
        client.connect()
        try:
            client.wait_property("Race CCD", "CCD_EXPOSURE", timeout=10.0)
            sent = 400
            for _ in range(sent):
                client.set_number("Race CCD", "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 0.5}, wait=False)
            client.wait_for(
                "Race CCD", "CCD_EXPOSURE", lambda s: len(log.read_text().split()) >= sent, 20.0, "all sends"
            )
        finally:
            client.disconnect()
    received = [float(v) for v in log.read_text().split()]
    assert len(received) == sent
    assert set(received) == {0.5}, f"{received.count(0.0)} of {sent} sends carried the driver's 0"
