"""`obsagent serve` as a service: SIGTERM is obeyed within 5 s whatever it is doing, a bad edit of
the sequence file is refused while the good one keeps running, and a server or a device that is
not there never makes it exit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.sim_fixtures import needs_indiserver
from tests.test_agent_night import NIGHT, start_sim, write_sequence

pytestmark = [pytest.mark.indi, needs_indiserver]


def _serve(seq: Path, address: str, data: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "agent.cli", "serve", str(seq), "--indi", address, "--data", str(data),
           "--until-night", NIGHT.isoformat(), "--fast-forward", "5000", *extra]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait(what: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if what():
            return
        assert proc.poll() is None, f"serve exited early:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"timed out:\n{log.read_text()[-3000:]}")


def _stop_within(proc: subprocess.Popen[bytes], seconds: float = 5.0) -> float:
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return time.monotonic() - start


def _state(data: Path) -> str:
    try:
        return str(json.loads((data / "status.json").read_text()).get("state"))
    except (OSError, ValueError):
        return ""


def _events(data: Path) -> str:
    try:
        return json.dumps(json.loads((data / "nights" / f"{NIGHT}.json").read_text())["events"])
    except (OSError, ValueError, KeyError):
        return ""


def test_sigterm_stops_the_service_within_5s_in_every_state(sim_server: Callable[..., object], tmp_path: Path) -> None:
    seq = write_sequence(tmp_path)
    server = start_sim(sim_server, seq)
    address = server.address  # type: ignore[attr-defined]
    data, log = tmp_path / "data", tmp_path / "serve.log"
    moments: list[tuple[str, Callable[[], bool]]] = [
        ("cooling or waiting", lambda: _state(data) in ("cooldown", "waiting")),
        ("gap calibration", lambda: _state(data) == "gap_calibration"),
        ("imaging", lambda: _state(data) == "imaging"),
        ("building masters", lambda: "building the masters" in _events(data)),
    ]
    took: dict[str, float] = {}
    for name, moment in moments:
        proc = _serve(seq, address, data, log)
        _wait(moment, proc, log)
        took[name] = _stop_within(proc)
        assert proc.returncode == 0, log.read_text()[-3000:]
    assert all(t <= 5.0 for t in took.values()), took
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert text.count("stopped (SIGTERM) after") == len(moments), "each stop is said once, on the way out"


def test_a_bad_edit_is_refused_and_the_running_file_kept(sim_server: Callable[..., object], tmp_path: Path) -> None:
    seq = write_sequence(tmp_path)
    server = sim_server(start="2026-11-22T09:00:00", time_factor=60, lat=52.52, lon=13.40, width=64, height=48)
    data, log = tmp_path / "data", tmp_path / "serve.log"
    good = seq.read_text()
    proc = _serve(seq, server.address, data, log, "--fast-forward", "20")  # type: ignore[attr-defined]
    _wait(lambda: "waiting for the night of" in log.read_text(), proc, log, timeout=60)
    seq.write_text(good.replace("version: 1", "version: 1\ncamera: [oops"))
    _wait(lambda: "edit refused" in log.read_text(), proc, log, timeout=30)
    raw = yaml.safe_load(good)
    raw["targets"][0]["exposures"][0]["count"] = 7
    seq.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc.send_signal(signal.SIGHUP)
    _wait(lambda: "reloaded" in log.read_text(), proc, log, timeout=30)
    assert _stop_within(proc) <= 5.0
    text = log.read_text()
    assert "Traceback" not in text
    refused = [line for line in text.splitlines() if "oops" in line or "line" in line.lower()]
    assert refused, "the refusal names the problem in the file"


def test_no_server_and_a_missing_camera_never_end_the_service(
    sim_server: Callable[..., object], tmp_path: Path, unused_tcp_port: int
) -> None:
    seq = write_sequence(tmp_path)
    data, log = tmp_path / "data", tmp_path / "serve.log"
    proc = _serve(seq, f"127.0.0.1:{unused_tcp_port}", data, log)
    _wait(lambda: "trying again" in log.read_text(), proc, log, timeout=60)
    time.sleep(1.0)
    assert proc.poll() is None, "no server: the service waits, it does not exit"
    assert _stop_within(proc) <= 5.0

    raw = yaml.safe_load(seq.read_text())
    raw["indi"]["devices"]["camera"] = "Sim Camera Unplugged"
    seq.write_text(yaml.safe_dump(raw, sort_keys=False))
    server = sim_server(start="2026-11-22T14:30:00", time_factor=300, lat=52.52, lon=13.40, width=64, height=48)
    proc = _serve(seq, server.address, data, log)  # type: ignore[attr-defined]
    _wait(lambda: "Sim Camera Unplugged" in log.read_text() and "trying again" in log.read_text(), proc, log)
    raw["indi"]["devices"]["camera"] = "Sim Camera"  # plugged in again (the file says the right name)
    seq.write_text(yaml.safe_dump(raw, sort_keys=False))
    _wait(lambda: _state(data) not in ("", "idle"), proc, log, timeout=120)
    assert _stop_within(proc) <= 5.0
    assert "Traceback" not in log.read_text()


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_refuses_bad_options_in_one_line(tmp_path: Path) -> None:
    seq = write_sequence(tmp_path)
    for args, fix in ((["--nights", "0"], "--nights"), (["--weather", "x.yaml"], "--sim"),
                      (["--until-night", "2026-13-45"], "YYYY-MM-DD")):
        done = subprocess.run([sys.executable, "-m", "agent.cli", "serve", str(seq), *args, "--data", str(tmp_path)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert fix in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert shutil.which("indiserver")
