"""Faults cost what they break: a corrupt frame is taken again, not a reconnect of the whole rig."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.devices import IndiClient
from tests.sim_fixtures import needs_indiserver
from tests.test_agent_night import assert_night_complete, night_runner, start_sim, write_sequence

pytestmark = [pytest.mark.indi, needs_indiserver]

CORRUPT_FRAMES = 9


class SporadicCorruption:
    """Every fourth image, the simulator corrupts exactly one image (its one-shot fault)."""

    def __init__(self, port: int, camera: str = "Sim Camera", every: int = 4, count: int = CORRUPT_FRAMES) -> None:
        self.client = IndiClient("127.0.0.1", port)
        self.camera = camera
        self.every = every
        self.count = count
        self.corrupted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> SporadicCorruption:
        self.client.connect()
        self.client.wait_property(self.camera, "SIM_FAULTS", timeout=15.0)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.client.disconnect()

    def _armed(self) -> bool:
        return "FAULT_BLOB_CORRUPT_ONCE" in self.client.get(self.camera, "SIM_FAULTS").on_switches()

    def _watch(self) -> None:
        images = 0
        last_version = 0
        while not self.stop.is_set() and self.corrupted < self.count:
            try:
                snap = self.client.get(self.camera, "CCD_EXPOSURE")
                if snap.version != last_version and snap.state == "Ok":
                    images += 1
                    if images % self.every == 0 and not self._armed():
                        self.client.send_switch(
                            self.camera, "SIM_FAULTS", ["FAULT_BLOB_CORRUPT_ONCE"], exclusive=False
                        )
                        self.corrupted += 1
                last_version = snap.version
            except Exception:  # noqa: BLE001 - the camera may be reconnecting
                pass
            time.sleep(0.01)


def test_nine_sporadic_corrupt_frames_are_retaken_and_the_night_completes(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    seq_path = write_sequence(tmp_path, flats="panel")
    server = start_sim(sim_server, seq_path)
    runner: Any = night_runner(seq_path, server, tmp_path / "data")
    with SporadicCorruption(server.port) as corruption:  # type: ignore[attr-defined]
        result = runner.run_in_thread()
        assert not corruption._armed(), "the last corruption was never used"
    assert corruption.corrupted == CORRUPT_FRAMES, "the night ended before nine frames could be corrupted"
    assert result.final_state == "done" and not result.aborted, result
    progress = runner.ctx.progress  # type: ignore[union-attr]
    assert progress.faults.get("corrupt frame") == CORRUPT_FRAMES, progress.faults
    assert "server lost" not in progress.faults and "device missing" not in progress.faults
    assert not any("recover" in e["text"] for e in progress.events), "no reconnect for a corrupt frame"
    assert_night_complete(tmp_path / "data")
