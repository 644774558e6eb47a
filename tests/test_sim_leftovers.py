"""`obsagent sim` leaves nothing behind and keeps its driver alive the way a stock indiserver does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.devices import IndiClient
from indi_sim.server import free_port
from tests.sim_fixtures import needs_indiserver

pytestmark = [pytest.mark.indi, needs_indiserver]


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_sim(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "sim", "--port", str(port), "--time-factor", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "simulated observatory" in line, line
    return proc, port


def test_sim_restarts_a_crashed_driver_and_sigterm_stops_everything(tmp_path: Path) -> None:
    proc, port = start_sim(tmp_path)
    try:
        [server] = children(proc.pid)
        wait_until(lambda: len(children(server)) == 1, 15, "the driver to start")
        [driver] = children(server)
        client = IndiClient("127.0.0.1", port)
        client.connect()
        try:
            client.wait_devices(["Sim Camera"], timeout=15)
            client.connect_device("Sim Camera")
            client.send_switch("Sim Camera", "SIM_FAULTS", ["FAULT_DRIVER_EXIT"], exclusive=False)
            client.wait_for("Sim Camera", "SIM_FAULTS", lambda s: "FAULT_DRIVER_EXIT" in s.on_switches(), 10, "fault")
            client.send_number("Sim Camera", "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 10})
            wait_until(lambda: not alive(driver), 20, "the driver to crash")
            wait_until(lambda: any(c != driver for c in children(server)), 20, "indiserver to restart the driver")
        finally:
            client.disconnect()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        restarted = children(server)
        wait_until(lambda: not alive(server), 10, "indiserver to stop")
        for pid in restarted:
            wait_until(lambda pid=pid: not alive(pid), 10, f"driver {pid} to stop")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_driver_exits_when_its_indiserver_dies(tmp_path: Path) -> None:
    proc, port = start_sim(tmp_path)
    try:
        [server] = children(proc.pid)
        wait_until(lambda: len(children(server)) == 1, 15, "the driver to start")
        [driver] = children(server)
        client = IndiClient("127.0.0.1", port)
        client.connect()
        client.wait_devices(["Sim Camera"], timeout=15)  # the driver is up and serving
        client.disconnect()
        os.kill(server, signal.SIGKILL)
        wait_until(lambda: not alive(driver), 10, "the orphaned driver to exit")
        assert proc.wait(timeout=10) == 1  # `obsagent sim` says the server exited
    finally:
        if proc.poll() is None:
            proc.kill()
