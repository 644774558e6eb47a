"""The agent runs whole simulated nights through the real indiserver and the indi_sim driver.

A small sequence (three targets in two filters, a gap before the last rises) at a high time factor
keeps each night to a minute or so of wall time.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from agent.commands.run import sim_start_for
from agent.config import load_sequence
from tests.sim_fixtures import needs_indiserver

pytestmark = [pytest.mark.indi, needs_indiserver]

NIGHT = dt.date(2026, 11, 22)
FACTOR = 300.0


def write_sequence(tmp: Path, flats: str = "panel") -> Path:
    seq = {
        "version": 1,
        "site": {"name": "Berlin", "latitude": 52.52, "longitude": 13.40, "elevation": 40,
                 "timezone": "Europe/Berlin", "horizon": 15},
        "indi": {"devices": {"camera": "Sim Camera", "wheel": "Sim Wheel", "flat_panel": "Sim FlatPanel",
                             "mount": "Sim Mount"}},
        "camera": {"sensor": "cmos", "set_point": -10, "set_point_tolerance": 1.0, "gain": 120, "offset": 30},
        "filters": ["L", "R", "G", "B", "Ha"],
        "targets": [
            {"name": "M31", "min_altitude": 35, "priority": 1,
             "exposures": [{"filter": "L", "exposure": 120, "count": 3}, {"filter": "Ha", "exposure": 300, "count": 2}]},
            {"name": "M33", "min_altitude": 35, "priority": 2,
             "exposures": [{"filter": "L", "exposure": 120, "count": 3}, {"filter": "Ha", "exposure": 300, "count": 2}]},
            {"name": "M42", "min_altitude": 30, "priority": 3,
             "exposures": [{"filter": "L", "exposure": 120, "count": 3}, {"filter": "Ha", "exposure": 300, "count": 2}]},
        ],
        "calibration": {
            "flats": {"source": flats},
            "bias": {"count": 4},
            "masters": {k: {"min_frames": 3, "max_age_days": 30} for k in ("bias", "dark", "darkflat", "flat")},
        },
    }
    path = tmp / "night.yaml"
    path.write_text(yaml.safe_dump(seq, sort_keys=False))
    return path


def start_sim(sim_server: Callable[..., object], seq_path: Path, **extra: object) -> object:
    seq = load_sequence(seq_path)
    start = sim_start_for(seq, NIGHT).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return sim_server(start=start, time_factor=FACTOR, lat=52.52, lon=13.40, width=256, height=192,
                      filters=list(seq.filters), cosmic_rays=False, **extra)


def night_runner(seq_path: Path, server: object, data: Path) -> object:
    """A NightRunner for the simulated night of `seq_path` against `server`, fast-forwarding idle time."""
    from agent.night.runner import NightRunner

    seq = load_sequence(seq_path)
    seq = seq.model_copy(update={"indi": seq.indi.model_copy(update={"address": server.address})})  # type: ignore[attr-defined]
    runner = NightRunner(seq, data, night=NIGHT)
    runner.fast_forward = 5000.0
    return runner


def agent_cmd(seq_path: Path, address: str, data: Path) -> list[str]:
    return [sys.executable, "-m", "agent.cli", "run", str(seq_path), "--indi", address, "--date", NIGHT.isoformat(),
            "--data", str(data), "--fast-forward", "5000", "--quiet"]


def library(data: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data / "library.sqlite")
    conn.row_factory = sqlite3.Row
    return conn


def assert_night_complete(data: Path) -> None:
    """Every light calibrated, masters for every configuration the lights used, no frame lost or twice."""
    night_dir = (data / "frames" / NIGHT.isoformat()).resolve()
    # the library records paths relative to the data folder
    files = sorted(p.resolve().relative_to(data.resolve()).as_posix() for p in night_dir.rglob("*.fits"))
    under = f"frames/{NIGHT.isoformat()}/%"
    with library(data) as conn:
        rows = [r["path"] for r in conn.execute("SELECT path FROM frames WHERE path LIKE ?", (under,))]
        assert sorted(rows) == files, "every frame on disk has exactly one library row"
        checksums = [r[0] for r in conn.execute("SELECT checksum FROM frames WHERE path LIKE ?", (under,))]
        assert len(checksums) == len(set(checksums)), "no frame stored twice"
        lights = conn.execute(
            "SELECT f.path, f.filter, f.exposure, l.status, l.reason FROM lights l JOIN frames f ON f.id = l.frame_id"
        ).fetchall()
        assert len(lights) == 3 * (3 + 2), [r["path"] for r in lights]
        bad = [(r["path"], r["status"], r["reason"]) for r in lights if r["status"] != "calibrated"]
        assert not bad
        kinds = {r[0] for r in conn.execute("SELECT DISTINCT frame_type FROM masters")}
        assert {"dark", "flat"} <= kinds
        flats = {r[0] for r in conn.execute("SELECT filter FROM masters WHERE frame_type = 'flat'")}
        assert flats == {"L", "Ha"}
        darks = {r[0] for r in conn.execute("SELECT exposure_key FROM masters WHERE frame_type = 'dark'")}
        assert darks == {120.0, 300.0}
    for light in lights:
        name = Path(light["path"]).name
        assert any(True for _ in (data / "calibrated").rglob(name.replace(".fits", "_cal.fits")))


def test_whole_night_survives_three_kill9_and_completes(sim_server: Callable[..., object], tmp_path: Path) -> None:
    seq_path = write_sequence(tmp_path, flats="panel")
    server = start_sim(sim_server, seq_path)
    data = tmp_path / "data"
    rng = random.Random(20261122)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(agent_cmd(seq_path, server.address, data), env=env,  # type: ignore[attr-defined]
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + rng.uniform(4.0, 14.0)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
    final = subprocess.run(agent_cmd(seq_path, server.address, data), env=env,  # type: ignore[attr-defined]
                           capture_output=True, text=True, timeout=480)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-3000:]
    assert kills >= 2, "the night finished before the agent could be killed; lower the time factor"
    progress = (data / "nights" / f"{NIGHT.isoformat()}.json").read_text()
    assert '"state": "done"' in progress and f'"resumed": {kills}' in progress
    assert_night_complete(data)
    report = subprocess.run([sys.executable, "-m", "agent.cli", "report", "--data", str(data), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0 and '"lights"' in report.stdout


def test_indi_server_lost_for_30s_then_night_finishes(sim_server: Callable[..., object], tmp_path: Path) -> None:
    from agent.night.runner import NightRunner

    seq_path = write_sequence(tmp_path, flats="panel")
    server = start_sim(sim_server, seq_path)
    seq = load_sequence(seq_path)
    seq = seq.model_copy(update={"indi": seq.indi.model_copy(update={"address": server.address})})  # type: ignore[attr-defined]
    runner = NightRunner(seq, tmp_path / "data", night=NIGHT)
    runner.fast_forward = 5000.0
    outage: dict[str, float] = {}

    def cut_the_server() -> None:
        while runner.ctx is None or runner.ctx.status.get("state") != "imaging":
            time.sleep(0.05)
        sim_now = runner.ctx.clock.now()
        server.stop(kill=True)  # type: ignore[attr-defined]
        outage["down"] = time.monotonic()
        time.sleep(30)
        # the simulator restarts where its clock would be (30 s of wall time at the time factor)
        resume = sim_now + dt.timedelta(seconds=30 * FACTOR)
        server.update_config(start=resume.strftime("%Y-%m-%dT%H:%M:%S"))  # type: ignore[attr-defined]
        server.start()  # type: ignore[attr-defined]
        outage["up"] = time.monotonic()

    import threading

    cutter = threading.Thread(target=cut_the_server, daemon=True)
    cutter.start()
    result = runner.run_in_thread()
    cutter.join(timeout=5)
    assert outage.get("up"), "the server was never cut"
    assert result.final_state == "done" and not result.aborted, result
    events = " ".join(e["text"] for e in runner.ctx.progress.events)  # type: ignore[union-attr]
    assert "lost" in events and "resuming the night" in events


def test_sigterm_aborts_exposure_closes_cap_and_turns_light_off(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    seq_path = write_sequence(tmp_path, flats="panel")
    server = start_sim(sim_server, seq_path)
    data = tmp_path / "data"
    log = tmp_path / "agent.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(agent_cmd(seq_path, server.address, data),  # type: ignore[attr-defined]
                                stdout=out, stderr=subprocess.STDOUT)
    from agent.devices import FlatPanel, IndiClient

    client = IndiClient("127.0.0.1", server.port)  # type: ignore[attr-defined]
    client.connect()
    try:
        client.wait_devices(["Sim Camera", "Sim FlatPanel"])
        # wait until the agent is exposing (a long dark in the first gap)
        client.wait_for("Sim Camera", "CCD_EXPOSURE", lambda s: s.state == "Busy", 60, "an exposure to start",
                        alert_raises=False)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        took = time.monotonic() - sent
        panel = FlatPanel(client, "Sim FlatPanel")
        assert took < 5, f"the agent needed {took:.1f} s to stop"
        assert client.get("Sim Camera", "CCD_EXPOSURE").state != "Busy"
        assert panel.cap_closed() is True
        assert panel.light_on() is False
        assert proc.returncode == 0, log.read_text()[-2000:]
    finally:
        client.disconnect()
        if proc.poll() is None:
            proc.kill()


def test_weak_cooler_moves_the_night_to_a_warmer_set_point_when_allowed(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    from agent.night.runner import NightRunner

    seq_path = write_sequence(tmp_path, flats="panel")
    text = seq_path.read_text().replace("set_point_tolerance: 1.0", "set_point_tolerance: 1.0\n  allow_warmer_set_point: true")
    seq_path.write_text(text)
    seq = load_sequence(seq_path)
    assert seq.camera.allow_warmer_set_point
    start = sim_start_for(seq, NIGHT).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    server = sim_server(start=start, time_factor=FACTOR, lat=52.52, lon=13.40, width=256, height=192,
                        filters=list(seq.filters), cosmic_rays=False, faults=["FAULT_COOLER_WEAK"])
    seq = seq.model_copy(update={"indi": seq.indi.model_copy(update={"address": server.address})})  # type: ignore[attr-defined]
    runner = NightRunner(seq, tmp_path / "data", night=NIGHT)
    runner.fast_forward = 5000.0
    result = runner.run_in_thread()
    assert result.final_state == "done" and not result.aborted
    assert runner.ctx is not None
    warmer = runner.ctx.set_point
    assert warmer is not None and warmer > -10
    assert any("runs at" in w for w in runner.ctx.progress.warnings)
    with library(tmp_path / "data") as conn:
        temps = {r[0] for r in conn.execute("SELECT DISTINCT set_temp FROM frames WHERE frame_type IN ('light', 'dark')")}
        assert temps == {warmer}, "lights and darks share the warmer set-point"
        statuses = {r[0] for r in conn.execute("SELECT status FROM lights")}
        assert statuses == {"calibrated"}
