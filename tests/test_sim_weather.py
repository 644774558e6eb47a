"""The simulated weather station and its scenario, through the real indiserver.

- WEATHER_PARAMETERS and WEATHER_STATUS say what the scenario says at the simulated instant of each
  update (the messages carry that instant as their timestamp), one update per PERIOD of simulated
  time, none while the scenario's `stale` fault holds.
- Around a transition the clock slows to the scenario's slow-motion factor, then returns; a
  fast-forward ends at the transition instead of skipping it.
- A scenario `server_loss` kills indiserver at its simulated time and starts it again; the clock
  resumes where it would be; a `driver_crash` ends the driver and indiserver restarts it.
- A light under full cloud shows far fewer stars and the sky level the model gives.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from agent.errors import ConfigError
from indi_sim.config import SimConfig
from indi_sim.launch import SimServer
from indi_sim.model import SimModel
from indi_sim.scenario import load_scenario
from indi_sim.weather import PARAMETERS, parameter_state
from tests import sim_fixtures
from tests.sim_fixtures import needs_indiserver

sim_server = sim_fixtures.sim_server
sim_rig = sim_fixtures.sim_rig

WX, CLOCK = "Sim Weather", "Sim Clock"
START = "2026-12-01T18:00:00"


def at(hhmmss: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"2026-12-01T{hhmmss}+00:00")


@dataclass
class Message:
    wall: float
    tag: str
    device: str
    name: str
    state: str
    timestamp: dt.datetime | None
    values: dict[str, str]


class Wire:
    """A bare INDI client on the server's TCP port: every message as sent, with its arrival time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self.messages: list[Message] = []
        self.closed = threading.Event()
        self.sock.sendall(b'<getProperties version="1.7"/>')
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        parser = ET.XMLPullParser(events=("start", "end"))
        parser.feed("<stream>")
        depth = 0
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            parser.feed(data)
            for event, el in parser.read_events():
                depth += 1 if event == "start" else -1
                if event == "end" and depth == 1:
                    stamp = el.get("timestamp")
                    when = dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC) if stamp else None
                    values = {c.get("name", ""): (c.text or "").strip() for c in el}
                    self.messages.append(Message(time.monotonic(), el.tag, el.get("device", ""), el.get("name", ""),
                                                 el.get("state", ""), when, values))
                    el.clear()
        self.closed.set()

    def send(self, xml: str) -> None:
        self.sock.sendall(xml.encode())

    def connect_device(self, device: str) -> None:
        self.send(f'<newSwitchVector device="{device}" name="CONNECTION">'
                  '<oneSwitch name="CONNECT">On</oneSwitch><oneSwitch name="DISCONNECT">Off</oneSwitch>'
                  "</newSwitchVector>")

    def of(self, device: str, name: str, tag: str = "set") -> list[Message]:
        return [m for m in list(self.messages) if m.device == device and m.name == name and m.tag.startswith(tag)]

    def wait(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def sim_now(self) -> dt.datetime:
        """Simulated time from the last SIM_CLOCK, extrapolated like a client does."""
        last = self.of(CLOCK, "SIM_CLOCK", "")[-1]
        base = dt.datetime.fromisoformat(last.values["UTC"]).replace(tzinfo=dt.UTC)
        return base + dt.timedelta(seconds=(time.monotonic() - last.wall) * float(last.values["TIME_FACTOR"]))

    def close(self) -> None:
        self.sock.close()


def scenario(**extra: Any) -> dict[str, Any]:
    return {"first_night": "2026-12-01", "timezone": "UTC", "update_period": 60, **extra}


def start(sim_server: Callable[..., SimServer], factor: float, weather: dict[str, Any], **more: Any) -> SimServer:
    return sim_server(start=START, time_factor=factor, width=64, height=48, weather_scenario=weather, **more)


@pytest.mark.indi
@needs_indiserver
def test_updates_follow_the_scenario_every_period_and_stop_while_stale(sim_server: Callable[..., SimServer]) -> None:
    weather = scenario(
        periods=[{"night": 1, "from": "18:05", "to": "18:10", "clouds": 100, "humidity": 90},
                 {"from": "2026-12-01T18:10:00Z", "to": "2026-12-01T18:12:00Z", "rain": 1.5, "wind": 19}],
        faults=[{"kind": "stale", "night": 1, "at": "18:14", "seconds": 180}])
    timeline = load_scenario(weather).timeline()
    server = start(sim_server, 600, weather)
    wire = Wire(server.port)
    wire.wait(lambda: wire.of(WX, "CONNECTION", "def"), 15, "the weather device")
    wire.connect_device(WX)
    wire.wait(lambda: any(m.timestamp and m.timestamp >= at("18:21:00") for m in wire.of(WX, "WEATHER_PARAMETERS")),
              30, "updates until 18:21")
    updates = wire.of(WX, "WEATHER_PARAMETERS")
    statuses = wire.of(WX, "WEATHER_STATUS")
    assert len(updates) >= 12 and len(statuses) >= len(updates)
    for update in updates:
        assert update.timestamp is not None and update.state == "Ok"
        expected = timeline.weather(update.timestamp)
        for quantity, (name, _) in PARAMETERS.items():
            assert float(update.values[name]) == pytest.approx(expected[quantity], abs=0.01), (update.timestamp, name)
    # the status lights judge the same values by the scenario's Ok ranges (INDI's checkParameterState)
    for status in statuses:
        assert status.timestamp is not None
        expected = timeline.weather(status.timestamp)
        lights = {PARAMETERS[q][0]: parameter_state(v, *(lambda lim: (lim.min_ok, lim.max_ok, lim.warn_percent))(
            timeline.scenario.limit(q))) for q, v in expected.items()}
        assert status.values == lights
        worst = "Alert" if "Alert" in lights.values() else "Busy" if "Busy" in lights.values() else "Ok"
        assert status.state == worst
    cloudy = [s for s in statuses if s.timestamp and at("18:05") <= s.timestamp < at("18:10")]
    rainy = [s for s in statuses if s.timestamp and at("18:10") <= s.timestamp < at("18:12")]
    clear = [s for s in statuses if s.timestamp and s.timestamp < at("18:05")]
    assert cloudy and all(s.state == "Alert" and s.values["WEATHER_CLOUD_COVER"] == "Alert" for s in cloudy)
    assert all(s.values["WEATHER_HUMIDITY"] == "Busy" for s in cloudy)  # 90 % is in the top 15 % of 0..100
    assert rainy and all(s.values["WEATHER_RAIN_HOUR"] == "Alert" and s.values["WEATHER_WIND_SPEED"] == "Busy"
                         for s in rainy)
    assert clear and all(s.state == "Ok" for s in clear)
    # one update per 60 simulated seconds, none from 18:14 to 18:17 (stale), then again
    stamps = [u.timestamp for u in updates if u.timestamp]
    stale = [t for t in stamps if at("18:14") <= t < at("18:17")]
    assert not stale
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    across = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False) if a < at("18:14") <= b]
    assert across and across[0] >= 180
    assert all(59.9 <= g <= 80 for g in gaps if g not in across), gaps
    assert any(at("18:17") <= t < at("18:18:30") for t in stamps)  # updates resume after the stale spell
    wire.close()


@pytest.mark.indi
@needs_indiserver
def test_slow_motion_around_a_transition_and_fast_forward_stops_at_it(sim_server: Callable[..., SimServer]) -> None:
    weather = scenario(slow_motion={"factor": 5, "seconds": 10},
                       periods=[{"night": 1, "from": "18:10", "to": "19:00", "clouds": 80}])
    server = start(sim_server, 600, weather)
    wire = Wire(server.port)
    wire.wait(lambda: wire.of(CLOCK, "SIM_CLOCK", ""), 15, "the clock")
    until = at("19:30").timestamp()
    wire.send(f'<newNumberVector device="{CLOCK}" name="SIM_FAST_FORWARD"><oneNumber name="UNTIL">{until:.0f}</oneNumber>'
              '<oneNumber name="FACTOR">3000</oneNumber></newNumberVector>')
    # the fast-forward is cut to the transition at 18:10
    wire.wait(lambda: any(m.values.get("FAST_UNTIL") == "2026-12-01T18:10:00" for m in wire.of(CLOCK, "SIM_CLOCK")),
              10, "FAST_UNTIL cut to the transition")
    slow = wire.wait(lambda: [m for m in wire.of(CLOCK, "SIM_CLOCK") if m.values["TIME_FACTOR"] == "5"], 20,
                     "the slow motion")[0]
    back = wire.wait(lambda: [m for m in wire.of(CLOCK, "SIM_CLOCK")
                              if m.wall > slow.wall and m.values["TIME_FACTOR"] == "600"], 20, "the base factor")[0]
    assert slow.values["UTC"] == "2026-12-01T18:10:00" and slow.values["FAST_UNTIL"] == ""
    assert slow.values["NEXT_CHANGE"] == "2026-12-01T18:10:10" and slow.values["NEXT_FACTOR"] == "600"
    resumed = dt.datetime.fromisoformat(back.values["UTC"]).replace(tzinfo=dt.UTC)
    assert at("18:10:10") <= resumed <= at("18:10:15")  # published on the change (a few ms late at x600)
    assert back.wall - slow.wall == pytest.approx(10 / 5, abs=0.5)  # 10 simulated s at x5
    assert back.values["FAST_UNTIL"] == ""  # the fast-forward ended for good at the transition
    wire.close()


@pytest.mark.indi
@needs_indiserver
def test_server_loss_and_driver_crash_happen_at_their_simulated_times(sim_server: Callable[..., SimServer]) -> None:
    weather = scenario(faults=[{"kind": "server_loss", "night": 1, "at": "18:02", "seconds": 120},
                               {"kind": "driver_crash", "night": 1, "at": "18:10"}])
    server = start(sim_server, 120, weather)
    assert server.max_restarts >= 1  # indiserver restarts the crashed driver
    wire = Wire(server.port)
    wire.wait(lambda: wire.of(CLOCK, "SIM_CLOCK", ""), 15, "the clock")
    assert wire.closed.wait(15), "indiserver was not killed"
    killed_wall = time.monotonic()
    loss = wire.wait(lambda: server.server_losses and server.server_losses[0].restarted_at and server.server_losses[0],
                     20, "the restart")
    assert loss.killed_at is not None and at("18:02") <= loss.killed_at < at("18:02:10")
    assert loss.restarted_at >= at("18:04")
    assert time.monotonic() - killed_wall < 10
    # the restarted driver resumes simulated time (it does not begin again at 18:00)
    wire = Wire(server.port)
    first = wire.wait(lambda: wire.of(CLOCK, "SIM_CLOCK", ""), 15, "the clock after the restart")[0]
    assert dt.datetime.fromisoformat(first.values["UTC"]).replace(tzinfo=dt.UTC) >= at("18:04")
    # at 18:10 the driver exits; indiserver starts it again and the devices are defined anew
    wire.wait(lambda: "restart" in server.log_text(), 30, "the driver crash and restart")
    wire.wait(lambda: [m for m in wire.of(WX, "CONNECTION", "def") if m.wall > first.wall + 0.5], 20,
              "the weather device defined again")
    assert wire.sim_now() >= at("18:10")
    assert wire.of(CLOCK, "SIM_CLOCK", "")[-1].values["UTC"] >= "2026-12-01T18:10"
    wire.close()


@pytest.mark.indi
@needs_indiserver
def test_a_light_under_full_cloud_has_far_fewer_stars_and_the_modelled_sky(sim_rig: Callable[..., Any]) -> None:
    weather = scenario(periods=[{"from": "2026-12-01T20:04:00Z", "to": "2026-12-01T22:00:00Z", "clouds": 100}])
    rig = sim_rig(start="2026-12-01T20:00:00", time_factor=60, cosmic_rays=False, weather_scenario=weather)
    rig.panel.open_cap()
    clear = rig.camera.expose(20, "light")
    from agent.devices.sim_clock import SimClock as FollowClock

    clock = FollowClock(rig.client)
    while clock.now() < at("20:04:05"):
        time.sleep(0.1)
    cloudy = rig.camera.expose(20, "light")
    assert float(clear.header["SIMCLOUD"]) == 0.0 and float(cloudy.header["SIMCLOUD"]) == 1.0

    def stars(frame: Any) -> int:
        data = frame.data.astype(np.float64)
        sigma = np.median(np.abs(data - np.median(data))) * 1.4826
        return int(np.count_nonzero(data > np.median(data) + 10 * sigma))

    assert stars(clear) >= 20 and stars(cloudy) * 10 <= stars(clear)
    cfg = rig.server.config
    model = SimModel(cfg.preset, seed=cfg.seed, width=cfg.width, height=cfg.height, cosmic_rays=False)
    truth = model.truth()
    pedestal = truth.pedestal_adu(model.spec.offset_default)
    for frame, cover in ((clear, 0.0), (cloudy, 1.0)):
        h = frame.header
        expected = model.expected_adu("light", 20, temperature=float(h["CCD-TEMP"]), gain=float(h["GAIN"]),
                                      offset=float(h["OFFSET"]), sun_altitude=float(h["SUNALT"]), cloud_cover=cover)
        assert float(np.median(frame.data)) == pytest.approx(float(np.median(expected)), rel=0.03, abs=16)
    # at night an overcast sky is brighter than a clear one (cloud_sky_night), stars 4 mag fainter
    sun = float(cloudy.header["SUNALT"])
    assert sun < -18 and truth.cloud_sky_factor(1.0, sun) == pytest.approx(2.5)
    assert truth.star_transmission(1.0) == pytest.approx(0.02)
    assert float(np.median(cloudy.data)) - pedestal > 1.5 * (float(np.median(clear.data)) - pedestal)


def test_bad_scenarios_are_one_line_naming_the_fix(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("first_night: 2026-12-01\nperiods:\n  - {from: '22:30', to: '23:00', clouds: 100}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: periods\.0\.from: '22:30' is a clock time; add night: N"):
        load_scenario(path)
    path.write_text("faults:\n  - {kind: server_loss, at: '2026-12-02T01:00:00Z'}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: faults\.0: server_loss needs seconds: N > 0"):
        load_scenario(path)
    path.write_text("periods:\n  - {from: '2026-12-02T01:00Z', to: '2026-12-02T03:00Z', cloud: 100}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: periods\.0\.cloud: unknown key"):
        load_scenario(path)
    with pytest.raises(ConfigError, match="timezone: .*unknown time zone 'Mars/Base'"):
        SimConfig.from_mapping({"weather_scenario": {"timezone": "Mars/Base"}})
    with pytest.raises(ConfigError, match="cannot read weather scenario"):
        load_scenario(tmp_path / "missing.yaml")


def test_night_clock_times_are_local_and_after_noon_is_the_evening() -> None:
    s = load_scenario(scenario(timezone="Europe/Berlin",
                               periods=[{"night": 2, "from": "22:30", "to": "02:00", "clouds": 100}]))
    span = s.timeline().periods[0][0]
    assert span.start == dt.datetime(2026, 12, 2, 21, 30, tzinfo=dt.UTC)  # CET = UTC+1
    assert span.end == dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC)


def test_the_example_week_holds_what_it_promises() -> None:
    timeline = load_scenario("examples/week.yaml").timeline()
    nights = [dt.datetime(2026, 12, d, 21, 0, tzinfo=dt.UTC) for d in range(1, 8)]  # 22:00 CET each evening
    cloudy = [n for n in nights if timeline.sky_cloud(n) >= 0.75]  # night 5 clouds over only at 23:40
    assert len(cloudy) == 2
    assert timeline.weather(dt.datetime(2026, 12, 6, 1, 0, tzinfo=dt.UTC))["rain"] > 0  # night 5, 02:00 CET
    assert [f.kind for f in timeline.faults] == ["server_loss", "driver_crash", "stale"]
