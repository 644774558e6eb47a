"""A running night shows itself in the status file and obeys the dashboard's requests between frames."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.control import get_request, submit
from agent.devices import FlatPanel, IndiClient, Mount
from agent.status import read_status
from tests.sim_fixtures import needs_indiserver
from tests.test_agent_night import night_runner, start_sim, write_sequence

pytestmark = [pytest.mark.indi, needs_indiserver]


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def lights_on_disk(data: Path) -> int:
    return len(list((data / "frames").rglob("light_*.fits")))


def test_status_file_follows_the_night_and_pause_resume_park_are_obeyed(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    seq_path = write_sequence(tmp_path, flats="panel")
    server = start_sim(sim_server, seq_path)
    data = tmp_path / "data"
    runner: Any = night_runner(seq_path, server, data)
    seen: dict[str, object] = {}

    def dashboard() -> None:
        wait_for(lambda: (s := read_status(data)) is not None and s.state == "imaging" and lights_on_disk(data) >= 2,
                 300, "the first lights")
        wait_for(lambda: (read_status(data).last_frame or {}).get("frame_type") == "light", 30,  # type: ignore[union-attr]
                 "the status to show the last light")
        status = read_status(data)
        assert status is not None
        seen["plan"] = status.plan is not None and bool(status.plan.get("blocks"))
        seen["last_frame"] = status.last_frame
        seen["states"] = status.state
        pause = submit(data, "pause", requested_by="test")
        wait_for(lambda: (r := get_request(data, pause.id)) is not None and r.ok is True, 30, "the pause")
        time.sleep(0.5)  # a frame in flight may still land
        held = lights_on_disk(data)
        time.sleep(3.0)  # 900 s of simulated time: several lights would have been taken
        seen["paused_lights"] = (held, lights_on_disk(data))
        seen["paused_flag"] = read_status(data).paused  # type: ignore[union-attr]
        resume = submit(data, "resume", requested_by="test")
        wait_for(lambda: lights_on_disk(data) > held, 60, "lights after resuming")
        seen["resumed"] = get_request(data, resume.id).ok  # type: ignore[union-attr]
        park = submit(data, "park", requested_by="test")
        seen["park_id"] = park.id

    watcher = threading.Thread(target=dashboard, daemon=True)
    watcher.start()
    result = runner.run_in_thread()
    watcher.join(timeout=30)
    assert seen.get("park_id"), seen
    assert result.aborted and "park requested from the dashboard" in str(result.reason), result
    assert seen["plan"] is True
    last = seen["last_frame"]
    assert isinstance(last, dict) and last["frame_type"] == "light" and Path(str(last["path"])).is_file()
    held, after = seen["paused_lights"]  # type: ignore[misc]
    assert after == held, "a light was taken while paused"
    assert seen["paused_flag"] is True and seen["resumed"] is True
    park = get_request(data, str(seen["park_id"]))
    assert park is not None and park.ok is True
    final = json.loads((data / "status.json").read_text())
    assert final["cooler"], "cooler samples for the plot"
    client = IndiClient("127.0.0.1", server.port)  # type: ignore[attr-defined]
    client.connect()
    try:
        client.wait_devices(["Sim Mount", "Sim FlatPanel"])
        mount, panel = Mount(client, "Sim Mount"), FlatPanel(client, "Sim FlatPanel")
        mount.connect()  # a driver defines its properties to a client once the device is connected
        panel.connect()
        assert mount.parked() is True
        assert panel.cap_closed() is True
    finally:
        client.disconnect()
