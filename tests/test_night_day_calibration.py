"""The day before a night, through the real indiserver and the simulator: with `darks.by_day` the
night's run, started in the morning, takes tonight's darks and bias behind the closed cap and
builds their masters before dusk; without it the day is idle."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from agent.config import load_sequence
from agent.planner import plan_night
from tests.sim_fixtures import needs_indiserver
from tests.test_agent_night import FACTOR, NIGHT, library, night_runner, write_sequence

pytestmark = [pytest.mark.indi, needs_indiserver]

MORNING = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)  # 10:00 in Berlin, the night's day


def _sequence(tmp: Path, by_day: bool) -> Path:
    path = write_sequence(tmp)
    raw = yaml.safe_load(path.read_text())
    raw["calibration"]["darks"] = {"by_day": by_day}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _run_the_day(
    sim_server: Callable[..., object], tmp: Path, by_day: bool, restart_while_resting: bool = False
) -> tuple[Path, dt.datetime, dict, list[tuple[dt.datetime, float]]]:
    """Run the night from its morning until the day is over (the night's first activity), then stop;
    the sensor's temperature is sampled on the way. With `restart_while_resting` the run is stopped
    once in the afternoon, while the cooler rests, and started again (as systemd would)."""
    seq_path = _sequence(tmp, by_day)
    seq = load_sequence(seq_path)
    begins = plan_night(seq, NIGHT).begins(seq.calibration.flats.sky_at_dusk)
    server = sim_server(start=MORNING.strftime("%Y-%m-%dT%H:%M:%S"), time_factor=FACTOR, lat=52.52, lon=13.40,
                        width=256, height=192, filters=list(seq.filters), cosmic_rays=False)
    data = tmp / "data"
    runner = night_runner(seq_path, server, data)
    worker = threading.Thread(target=runner.run, daemon=True)  # type: ignore[attr-defined]
    worker.start()
    deadline = time.monotonic() + 240
    temperatures: list[tuple[dt.datetime, float]] = []
    while time.monotonic() < deadline and worker.is_alive():
        ctx = runner.ctx  # type: ignore[attr-defined]
        if ctx is not None:
            now, celsius = ctx.now(), ctx.rig.camera.temperature()
            if celsius is not None:
                temperatures.append((now, celsius))
            if now >= begins - dt.timedelta(minutes=2):
                break
            if restart_while_resting and ctx.cooler_resting and now >= begins - dt.timedelta(hours=4):
                restart_while_resting = False
                runner.request_stop("restarted")  # type: ignore[attr-defined]
                worker.join(60)
                runner = night_runner(seq_path, server, data)
                worker = threading.Thread(target=runner.run, daemon=True)  # type: ignore[attr-defined]
                worker.start()
        time.sleep(0.05)
    runner.request_stop("the day is over")  # type: ignore[attr-defined]
    worker.join(60)
    assert not worker.is_alive()
    progress = json.loads((data / "nights" / f"{NIGHT}.json").read_text())
    return data, begins, progress, temperatures


def test_darks_by_day_are_taken_behind_the_cap_and_built_into_masters_before_dusk(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    data, begins, progress, temperatures = _run_the_day(sim_server, tmp_path, by_day=True,
                                                        restart_while_resting=True)
    assert "day_calibration" in progress["finished_activities"], progress
    rests = [e["text"] for e in progress["events"] if "cooler off until" in e["text"]]
    assert len(rests) == 2, "the rest is taken after the darks, and again after a restart in the afternoon"
    with library(data) as conn:
        frames = conn.execute("SELECT frame_type, exposure, captured_at, path FROM frames").fetchall()
        masters = {(r["frame_type"], r["exposure_key"]) for r in conn.execute("SELECT * FROM masters")}
    assert frames, "the day was used"
    assert all(float(r["captured_at"]) < begins.timestamp() for r in frames), "all of it before the night"
    assert {r["frame_type"] for r in frames} <= {"dark", "bias", "darkflat"}, "nothing but cap-closed frames"
    darks = {float(r["exposure"]) for r in frames if r["frame_type"] == "dark"}
    assert darks == {120.0, 300.0}, "the darks of tonight's lights (L 120 s, Ha 300 s)"
    # tonight's lights find their masters ready
    assert {("dark", 120.0), ("dark", 300.0)} <= {(kind, float(e or 0)) for kind, e in masters}, masters
    assert any(kind == "bias" for kind, _ in masters), masters
    # the cap kept the daylight out: a 300 s dark is at the sensor's dark level, far below the sky
    longest = next(r["path"] for r in frames if r["frame_type"] == "dark" and float(r["exposure"]) == 300.0)
    with fits.open(data / longest) as hdul:
        assert float(np.median(hdul[0].data)) < 0.05 * 65535
    # the cooler rests through the afternoon (a restart too) and is back at the set-point (-10 °C) for the night
    last_frame = dt.datetime.fromtimestamp(max(float(r["captured_at"]) for r in frames), dt.UTC)
    lead = dt.timedelta(minutes=30)  # schedule.cooldown_lead
    afternoon = [c for t, c in temperatures if last_frame + dt.timedelta(minutes=30) < t < begins - lead]
    assert afternoon and max(afternoon) > 0.0, "the sensor warmed while nothing needed it cold"
    assert abs(temperatures[-1][1] - (-10.0)) <= 1.0, temperatures[-5:]


def test_without_darks_by_day_the_day_is_idle(sim_server: Callable[..., object], tmp_path: Path) -> None:
    data, begins, progress, _ = _run_the_day(sim_server, tmp_path, by_day=False)
    assert "day_calibration" not in progress["finished_activities"]
    with library(data) as conn:
        taken = conn.execute("SELECT COUNT(*) FROM frames WHERE captured_at < ?", (begins.timestamp(),)).fetchone()[0]
    assert taken == 0, "nothing is taken by day unless the sequence says the camera is dark behind its cap"


def test_the_service_started_in_the_morning_spends_the_day_on_darks_and_obeys_sigterm(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    from tests.test_serve import _serve, _state, _stop_within, _wait

    seq_path = _sequence(tmp_path, by_day=True)
    seq = load_sequence(seq_path)
    server = sim_server(start=MORNING.strftime("%Y-%m-%dT%H:%M:%S"), time_factor=FACTOR, lat=52.52, lon=13.40,
                        width=256, height=192, filters=list(seq.filters), cosmic_rays=False)
    data, log = tmp_path / "data", tmp_path / "serve.log"
    proc = _serve(seq_path, server.address, data, log)  # type: ignore[attr-defined]
    _wait(lambda: _state(data) == "day_calibration", proc, log, timeout=120)  # not idle until the evening
    assert _stop_within(proc) <= 5.0
    assert proc.returncode == 0, log.read_text()[-3000:]
    with library(data) as conn:
        taken = conn.execute("SELECT frame_type, captured_at FROM frames").fetchall()
    begins = plan_night(seq, NIGHT).begins(seq.calibration.flats.sky_at_dusk)
    assert all(float(r["captured_at"]) < begins.timestamp() for r in taken)
