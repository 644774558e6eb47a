"""Whole simulated nights with the simulator's faults on: what is called good is good.

- weak cooler mid-night: no master mixes temperatures, no light is calibrated by a master of
  another temperature, every light's status is true;
- light leak: the leaked darks are quarantined, no light is calibrated with a leaked master, the
  report names the leak;
- cap jammed in the morning: the masters that are ready are built and the lights calibrated.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import load_sequence
from agent.devices import IndiClient
from tests.sim_fixtures import needs_indiserver
from tests.test_agent_night import NIGHT, library, start_sim, write_sequence

pytestmark = [pytest.mark.indi, needs_indiserver]


def run_night(seq_path: Path, server: object, data: Path, during: Callable[[object], None] | None = None) -> object:
    from agent.night.runner import NightRunner

    seq = load_sequence(seq_path)
    seq = seq.model_copy(update={"indi": seq.indi.model_copy(update={"address": server.address})})  # type: ignore[attr-defined]
    runner = NightRunner(seq, data, night=NIGHT)
    runner.fast_forward = 5000.0
    watcher = None
    if during is not None:
        watcher = threading.Thread(target=during, args=(runner,), daemon=True)
        watcher.start()
    result = runner.run_in_thread()
    if watcher is not None:
        watcher.join(timeout=5)
    return result


def when_state(runner: object, states: set[str], timeout: float = 300.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ctx = runner.ctx  # type: ignore[attr-defined]
        if ctx is not None and ctx.status.get("state") in states:
            return True
        time.sleep(0.05)
    return False


def switch_fault(port: int, device: str, names: list[str]) -> None:
    client = IndiClient("127.0.0.1", port)
    client.connect()
    try:
        client.wait_property(device, "SIM_FAULTS", timeout=10)
        client.send_switch(device, "SIM_FAULTS", names, exclusive=True)
        client.wait_for(device, "SIM_FAULTS", lambda s: set(s.on_switches()) == set(names), 10, "faults")
    finally:
        client.disconnect()


def report(data: Path) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "agent.cli", "report", "--data", str(data), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_weak_cooler_mid_night_never_mixes_temperatures(sim_server: Callable[..., object], tmp_path: Path) -> None:
    seq_path = write_sequence(tmp_path, flats="panel")
    server = start_sim(sim_server, seq_path)
    data = tmp_path / "data"

    def weaken(runner: object) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(list((data / "frames").rglob("light_*.fits"))) < 4:
            time.sleep(0.05)  # a few lights at the set-point first
        switch_fault(server.port, "Sim Camera", ["FAULT_COOLER_WEAK"])  # type: ignore[attr-defined]

    result = run_night(seq_path, server, data, during=weaken)
    assert result.final_state == "done", result  # type: ignore[attr-defined]
    tolerance = 1.0
    with library(data) as conn:
        temps = {r[0] for r in conn.execute("SELECT ROUND(temperature) FROM frames WHERE frame_type = 'light'")}
        assert len(temps) > 1, f"the cooler never lost ground: {temps}"
        for m in conn.execute("SELECT id, temperature, stats FROM masters WHERE frame_type = 'dark'"):
            stats = json.loads(m["stats"])
            spread = stats["temperature_max"] - stats["temperature_min"]
            assert spread <= 2 * tolerance + 0.05, f"master #{m['id']} mixes temperatures: {stats}"
            sources = [r[0] for r in conn.execute(
                "SELECT f.temperature FROM master_sources s JOIN frames f ON f.id = s.frame_id WHERE s.master_id = ?",
                (m["id"],))]
            assert max(sources) - min(sources) <= 2 * tolerance + 0.05
        lights = conn.execute(
            "SELECT f.temperature, l.status, l.masters_used FROM lights l JOIN frames f ON f.id = l.frame_id"
        ).fetchall()
        assert lights
        for light in lights:
            if light["status"] != "calibrated":
                assert light["status"] in ("no_masters", "failed")
                continue
            for master_id in json.loads(light["masters_used"]).values():
                m = conn.execute("SELECT frame_type, temperature FROM masters WHERE id = ?", (master_id,)).fetchone()
                if m["frame_type"] == "dark":
                    assert abs(m["temperature"] - light["temperature"]) <= tolerance + 0.05, (dict(m), dict(light))


def test_light_leak_darks_are_quarantined_and_named_in_the_report(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    seq_path = write_sequence(tmp_path, flats="panel")
    # no darks in the gaps: they are all taken in the morning, when the twilight leaks past the cap
    seq_path.write_text(seq_path.read_text().replace("calibration:\n", "calibration:\n  darks:\n    in_gaps: false\n", 1))
    seq = load_sequence(seq_path)
    assert not seq.calibration.darks.in_gaps
    from agent.commands.run import sim_start_for

    start = sim_start_for(seq, NIGHT).strftime("%Y-%m-%dT%H:%M:%S")
    # light leaks past the closed cap: at dusk and dawn the darks see the bright sky
    server = sim_server(start=start, time_factor=300.0, lat=52.52, lon=13.40, width=256, height=192,
                        filters=list(seq.filters), cosmic_rays=False, light_leak=0.2)
    data = tmp_path / "data"
    result = run_night(seq_path, server, data)
    assert result.final_state == "done", result  # type: ignore[attr-defined]
    with library(data) as conn:
        # caught at the door (saturated) or when their master was refused (levels drift: a leak)
        leaked = conn.execute(
            "SELECT path, reason FROM frames WHERE frame_type IN ('dark', 'darkflat') "
            "AND state IN ('quarantined', 'rejected') AND (reason LIKE '%leak%' OR reason LIKE '%saturated%')"
        ).fetchall()
        assert leaked, "no leaked frame was caught"
        used = conn.execute("SELECT COUNT(*) FROM frames WHERE frame_type = 'dark' AND state = 'in_master'").fetchone()[0]
        assert used == 0, "a leaked dark went into a master"
        in_masters = conn.execute(
            "SELECT COUNT(*) FROM master_sources s JOIN frames f ON f.id = s.frame_id WHERE f.state != 'in_master'"
        ).fetchone()[0]
        assert in_masters == 0, "a quarantined frame went into a master"
        calibrated = conn.execute(
            "SELECT l.reason FROM lights l WHERE l.status = 'calibrated'"
        ).fetchall()
        failed_clipped = conn.execute(
            "SELECT COUNT(*) FROM lights WHERE status = 'calibrated' AND reason LIKE '%clipped%'"
        ).fetchone()[0]
        assert failed_clipped == 0
        assert calibrated is not None
    gates = report(data)["gates"]
    assert any("leak" in g["reason"] or "saturated" in g["reason"] for g in gates), gates  # type: ignore[index, union-attr]


def test_cap_jammed_in_the_morning_still_builds_and_calibrates(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    seq_path = write_sequence(tmp_path, flats="sky-both")
    server = start_sim(sim_server, seq_path)
    data = tmp_path / "data"

    def jam(runner: object) -> None:
        if when_state(runner, {"dawn_flats", "morning_calibration"}, timeout=600):
            switch_fault(server.port, "Sim FlatPanel", ["FAULT_CAP_JAM"])  # type: ignore[attr-defined]

    result = run_night(seq_path, server, data, during=jam)
    assert result.final_state == "done", result  # type: ignore[attr-defined]
    with library(data) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM lights")]
        assert statuses and set(statuses) == {"calibrated"}, statuses
        kinds = {r[0] for r in conn.execute("SELECT DISTINCT frame_type FROM masters")}
        assert "dark" in kinds
    progress = json.loads((data / "nights" / f"{NIGHT.isoformat()}.json").read_text())
    events = " ".join(e["text"] for e in progress["events"])
    assert "jam" in events or "cap" in events, events[-2000:]
