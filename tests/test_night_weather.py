"""Bad weather during a simulated night, through the real indiserver and the simulator's weather
station: rain starting mid-exposure closes up within 5 simulated seconds, the hold becomes darks,
the sky is reopened only after the hysteresis, and the night still finishes its lights."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.sim_fixtures import needs_indiserver
from tests.test_agent_night import (
    NIGHT,
    assert_night_complete,
    library,
    night_runner,
    start_sim,
    write_sequence,
)

pytestmark = [pytest.mark.indi, needs_indiserver]

RAIN_FROM = dt.datetime(2026, 11, 22, 17, 9, 30, tzinfo=dt.UTC)  # the second M31 L light is exposing
RAIN_TO = dt.datetime(2026, 11, 22, 17, 30, tzinfo=dt.UTC)
UPDATE_S = 5.0  # the station's update period (simulated s)
HYSTERESIS_S = 600.0


def _scenario(tmp: Path) -> Path:
    path = tmp / "weather.yaml"
    path.write_text(yaml.safe_dump({
        "update_period": UPDATE_S,
        "slow_motion": {"factor": 2, "seconds": 30},
        "periods": [{"from": RAIN_FROM.isoformat(), "to": RAIN_TO.isoformat(), "rain": 3.0, "clouds": 100}],
    }))
    return path


def _with_safety(seq_path: Path) -> None:
    raw = yaml.safe_load(seq_path.read_text())
    raw["safety"] = {"weather": ["Sim Weather"], "max_age": 120, "resume_after": HYSTERESIS_S}
    raw["calibration"]["darks"] = {"in_gaps": False}  # so the darks are still needed when the rain comes
    seq_path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_rain_mid_exposure_closes_up_in_5s_and_reopens_after_the_hysteresis(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    seq_path = write_sequence(tmp_path)
    _with_safety(seq_path)
    server = start_sim(sim_server, seq_path, weather_scenario=str(_scenario(tmp_path)))
    data = tmp_path / "data"
    runner = night_runner(seq_path, server, data)
    result = runner.run_in_thread()  # type: ignore[attr-defined]
    assert result.final_state == "done", result

    progress = json.loads((data / "nights" / f"{NIGHT}.json").read_text())
    closes = progress["safety"]
    assert len(closes) == 1, closes
    close = closes[0]
    seen = dt.datetime.fromisoformat(close["unsafe_seen"])
    assert RAIN_FROM <= seen <= RAIN_FROM + dt.timedelta(seconds=UPDATE_S + 2), "unsafe seen at the station's update"
    assert "rain" in close["reason"].lower() or "precip" in close["reason"].lower(), close
    assert close["aborted_s"] <= 5.0 and close["cap_closed_s"] <= 5.0, close
    assert close["park_started_s"] <= 5.0 and close["parked_s"] is not None, close
    reopened = dt.datetime.fromisoformat(close["reopened"])
    assert reopened >= RAIN_TO + dt.timedelta(seconds=HYSTERESIS_S), "no reopening before the hysteresis"
    assert reopened <= RAIN_TO + dt.timedelta(seconds=HYSTERESIS_S + 600), "reopened soon after the hysteresis"

    with library(data) as conn:
        lights = conn.execute(
            "SELECT captured_at FROM frames WHERE frame_type = 'light' AND state = 'light'"
        ).fetchall()
        during = [r for r in lights if RAIN_FROM.timestamp() + 5 < float(r[0]) < reopened.timestamp()]
        assert not during, "no light is taken under the rain or during the hysteresis"
        darks_in_hold = conn.execute(
            "SELECT COUNT(*) FROM frames WHERE frame_type IN ('dark', 'bias', 'darkflat') "
            "AND captured_at BETWEEN ? AND ?",
            (RAIN_FROM.timestamp(), reopened.timestamp()),
        ).fetchone()[0]
    assert darks_in_hold > 0, "the closed time went to cap-closed calibration"
    assert_night_complete(data)
