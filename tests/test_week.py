"""A simulated week run by `obsagent serve`, as a user would leave it at the mount.

Seven nights through the real indiserver with our simulator and its weather station: two
overcast nights, rain starting mid-exposure on the fifth, an indiserver loss on the third, a
driver crash on the sixth, and the service itself killed with SIGKILL on the seventh and
started again as systemd would. No step by hand. The week runs at high simulated speed; its wall
time is written to `week-wall-time.txt` in the test's folder and printed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.sim_fixtures import needs_indiserver
from tests.test_notify import Inbox

pytestmark = [pytest.mark.indi, needs_indiserver]

HERE = Path(__file__).parent
FIRST = dt.date(2026, 12, 1)
LAST = dt.date(2026, 12, 7)
NIGHTS = [FIRST + dt.timedelta(days=i) for i in range(7)]
OVERCAST = {dt.date(2026, 12, 2), dt.date(2026, 12, 4)}
RAIN_NIGHT = dt.date(2026, 12, 5)
RAIN_FROM = dt.datetime(2026, 12, 5, 17, 11, 30, tzinfo=dt.UTC)  # 18:11:30 in Berlin: M33 L is exposing
KILL_NIGHT = dt.date(2026, 12, 7)
UPDATE_S = 10.0
HYSTERESIS_S = 600.0
SCENARIO = {
    "first_night": FIRST.isoformat(),
    "timezone": "Europe/Berlin",
    "update_period": UPDATE_S,
    "slow_motion": {"factor": 3, "seconds": 15},
    "clear": {"clouds": 5, "rain": 0, "humidity": 70, "wind": 6, "temperature": 1},
    "periods": [
        {"night": 2, "from": "15:30", "to": "08:30", "clouds": 100, "humidity": 92},
        {"night": 4, "from": "15:30", "to": "08:30", "clouds": 90, "humidity": 90},
        {"night": 5, "from": "18:11:30", "to": "19:40", "rain": 2.5, "clouds": 100},
    ],
    "faults": [
        {"kind": "server_loss", "night": 3, "at": "18:05", "seconds": 120},
        {"kind": "driver_crash", "night": 6, "at": "18:06"},
    ],
}


def _serve(seq: Path, address: str, data: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "agent.cli", "serve", str(seq), "--indi", address, "--data", str(data),
           "--until-night", LAST.isoformat(), "--fast-forward", "10000"]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _status(data: Path) -> dict[str, object]:
    try:
        return dict(json.loads((data / "status.json").read_text()))
    except (OSError, ValueError):
        return {}


def _library(data: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data / "library.sqlite")
    conn.row_factory = sqlite3.Row
    return conn


def _night_of(path: str) -> str:
    return path.split("/")[1]  # frames/<night>/...


@pytest.mark.timeout(1500)
def test_a_simulated_week_unattended(sim_server: Callable[..., object], tmp_path: Path) -> None:
    seq = tmp_path / "week.yaml"
    inbox = Inbox()  # the user's phone: apprise posts to it over loopback
    raw = yaml.safe_load((HERE / "data" / "week_sequence.yaml").read_text())
    raw["notifications"] = {"urls": [inbox.url]}
    seq.write_text(yaml.safe_dump(raw, sort_keys=False))
    scenario = tmp_path / "weather.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO, sort_keys=False))
    server = sim_server(start="2026-12-01T14:20:00", time_factor=600, lat=52.52, lon=13.40, elevation=40,
                        width=256, height=192, filters=["L", "R", "G", "B", "Ha"], cosmic_rays=False,
                        weather_scenario=str(scenario))
    data, log = tmp_path / "data", tmp_path / "serve.log"
    started = time.monotonic()
    first = _serve(seq, server.address, data, log)  # type: ignore[attr-defined]
    deadline = started + 1200
    at_second_morning: list[sqlite3.Row] = []  # the masters there were when the third night began
    while time.monotonic() < deadline and first.poll() is None:
        status = _status(data)
        if not at_second_morning and str(status.get("night", "")) >= "2026-12-03":
            with _library(data) as conn:
                at_second_morning = conn.execute("SELECT frame_type, exposure_key, filter FROM masters").fetchall()
        if status.get("night") == KILL_NIGHT.isoformat() and status.get("state") == "imaging":
            break
        time.sleep(0.1)
    assert first.poll() is None, f"the service ended before the last night:\n{log.read_text()[-3000:]}"
    first.send_signal(signal.SIGKILL)  # as the OOM killer or a power glitch would
    first.wait()
    second = _serve(seq, server.address, data, log)  # type: ignore[attr-defined]  # systemd's restart
    assert second.wait(timeout=max(60.0, deadline - time.monotonic())) == 0, log.read_text()[-3000:]
    wall = time.monotonic() - started
    (tmp_path / "week-wall-time.txt").write_text(f"{wall:.1f} s\n")
    print(f"simulated week: {wall:.1f} s wall")
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]

    progress = {n: json.loads((data / "nights" / f"{n}.json").read_text()) for n in map(str, NIGHTS)}
    assert all(p["state"] == "done" for p in progress.values()), {n: p["state"] for n, p in progress.items()}
    assert progress[KILL_NIGHT.isoformat()]["resumed"] >= 1, "the killed night was resumed, not started over"

    with _library(data) as conn:
        rows = conn.execute("SELECT f.id, f.path, f.checksum, f.state, f.filter, f.exposure, f.reason, f.captured_at, "
                            "l.status, l.reason AS why FROM frames f LEFT JOIN lights l ON l.frame_id = f.id "
                            "WHERE f.frame_type = 'light'").fetchall()
        every = [r["path"] for r in conn.execute("SELECT path FROM frames WHERE path LIKE 'frames/%'")]
        sums = [r[0] for r in conn.execute("SELECT checksum FROM frames")]

    # no frame lost or twice
    on_disk = sorted(p.relative_to(data).as_posix() for p in (data / "frames").rglob("*.fits"))
    assert sorted(every) == on_disk, "every frame on disk has exactly one library row"
    assert len(sums) == len(set(sums)), "no frame stored twice"

    # every campaign target progresses on every clear night
    clear = [n for n in NIGHTS if n not in OVERCAST and n != RAIN_NIGHT]
    good = {(_night_of(r["path"]), r["path"].split("/")[2]) for r in rows if r["state"] == "light"}
    for night in clear:
        for target in ("M31", "M33", "M42"):
            assert (night.isoformat(), target) in good, f"{target} got no light on the clear night of {night}"
    for night in OVERCAST:
        assert not [r for r in rows if _night_of(r["path"]) == night.isoformat()], f"lights under cloud on {night}"

    # every light calibrated, or rejected with its reason
    for r in rows:
        if r["state"] == "rejected":
            assert r["reason"] or r["why"], dict(r)
        else:
            assert r["status"] == "calibrated", dict(r)

    # by the second morning every light configuration used has its masters
    early = at_second_morning
    configs = {(r["filter"], float(r["exposure"])) for r in rows if _night_of(r["path"]) <= "2026-12-02"}
    assert configs, "lights on the first night"
    for filter_name, exposure in configs:
        assert any(m["frame_type"] == "dark" and abs(float(m["exposure_key"]) - exposure) < 0.5 for m in early), (
            f"no master dark for {exposure:g} s by the second morning")
        assert any(m["frame_type"] == "flat" and m["filter"] == filter_name for m in early), (
            f"no master flat for {filter_name} by the second morning")
    assert any(m["frame_type"] == "bias" for m in early)

    # unsafe: exposure aborted, cap closed and the park commanded within 5 s (the mount then slews to its
    # park position at its own rate, as a real one does); no reopening inside the hysteresis
    closes = [(night, c) for night, p in progress.items() for c in p["safety"]]
    assert {night for night, _ in closes} >= {str(n) for n in OVERCAST | {RAIN_NIGHT}}, closes
    for night, close in closes:
        assert close["aborted_s"] <= 5.0, (night, close)
        assert close.get("cap_closed_s") is not None and close["cap_closed_s"] <= 5.0, (night, close)
        assert close.get("park_started_s", 0.0) <= 5.0, (night, close)
        assert "park_started_s" not in close or close.get("parked_s") is not None, (night, close)
        if "reopened" in close:
            reopened = dt.datetime.fromisoformat(close["reopened"])
            safe = dt.datetime.fromisoformat(close["safe_since"])
            assert (reopened - safe).total_seconds() >= HYSTERESIS_S, (night, close)
    rain = [c for night, c in closes if night == str(RAIN_NIGHT) and "precip" in c["reason"].lower()]
    assert rain, closes
    seen = dt.datetime.fromisoformat(rain[0]["unsafe_seen"])
    assert RAIN_FROM <= seen <= RAIN_FROM + dt.timedelta(seconds=UPDATE_S + 5), rain[0]
    reopened = dt.datetime.fromisoformat(rain[0]["reopened"]).timestamp()
    in_rain = [dict(r) for r in rows if seen.timestamp() + 1 < float(r["captured_at"]) < reopened]
    assert not in_rain, "no light is kept from the rain or the hysteresis after it"
    assert wall < 15 * 60, f"the week took {wall:.0f} s"

    # the person was told: each finished night, and closing up for the weather
    titles = [m.get("title", "") for m in inbox.wait_for(7)]
    assert sum("night of" in t for t in titles) >= 6, titles  # one per night (the killed run's may be lost)
    assert any("closed up" in t for t in titles), titles
    inbox.server.shutdown()
