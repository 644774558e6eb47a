"""The weather watch against real drivers under the real indiserver: the stock weather simulator,
the weather safety proxy (driven by its script, as on a real rig) and a replay of the AAG Cloud
Watcher's INDI 2.x layout (flipped cloud range, SAFETY_STATUS)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.devices import IndiClient
from agent.devices.weather import Conditions, WeatherWatch
from indi_sim.replay.launch import ReplayServer
from indi_sim.server import IndiServer
from tests.indi_fixtures import needs_indiserver

pytestmark = [pytest.mark.indi, needs_indiserver]
SIM, PROXY, AAG = "Weather Simulator", "Weather Safety Proxy", "AAG Cloud Watcher NG"
CALM = {"Weather": 0, "Temperature": 15, "Wind": 0, "Gust": 0, "Precip": 0}


def wait_for(watch: WeatherWatch, check: Callable[[Conditions], bool], timeout: float = 10.0) -> Conditions:
    end = time.monotonic() + timeout
    while True:
        now = watch.conditions()
        if check(now):
            return now
        assert time.monotonic() < end, f"still {now}"
        watch.changed.wait(0.2)
        watch.changed.clear()


def refresh(client: IndiClient, device: str) -> None:
    client.send_switch(device, "WEATHER_REFRESH", ["REFRESH"])


@pytest.fixture(scope="module")
def sim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndiServer]:
    with IndiServer(["indi_simulator_weather"], env={"HOME": str(tmp_path_factory.mktemp("home"))}) as server:
        yield server


@pytest.fixture
def sim(sim_server: IndiServer) -> Iterator[IndiClient]:
    """A client with the simulator connected, calm weather and the stock 60 s period."""
    client = IndiClient("127.0.0.1", sim_server.port)
    client.connect()
    client.connect_device(SIM)
    client.set_number(SIM, "WEATHER_CONTROL", CALM)
    client.set_number(SIM, "WEATHER_UPDATE", {"PERIOD": 60})
    refresh(client, SIM)
    client.wait_for(SIM, "WEATHER_PARAMETERS", lambda s: s.values["WEATHER_RAIN_HOUR"] == 0
                    and s.values["WEATHER_TEMPERATURE"] == 15, 10, "calm weather")
    yield client
    client.disconnect()


def test_rain_trips_the_watch_within_half_a_second(sim: IndiClient) -> None:
    watch = WeatherWatch(sim, [SIM], max_age_s=120, unsafe_on="alert")
    tripped: list[tuple[float, Conditions]] = []
    watch.on_unsafe(lambda c: tripped.append((time.monotonic(), c)))
    watch.start()
    refresh(sim, SIM)
    safe = wait_for(watch, lambda c: c.safe and c.parameters.get("WEATHER_RAIN_HOUR") == 0)
    assert safe.age_s is not None and safe.age_s < 5

    sim.set_number(SIM, "WEATHER_CONTROL", {**CALM, "Precip": 10})  # taken at the next update
    sent = time.monotonic()
    refresh(sim, SIM)
    end = sent + 5
    while not tripped and time.monotonic() < end:
        time.sleep(0.01)
    assert tripped, watch.conditions()
    at, conditions = tripped[0]
    assert at - sent < 0.5
    assert not conditions.safe
    # the driver sends WEATHER_STATUS just before the WEATHER_PARAMETERS of the same reading
    assert conditions.reasons == [f"{SIM}: Precip (mm) (alert)"]
    later = wait_for(watch, lambda c: c.parameters.get("WEATHER_RAIN_HOUR") == 10)
    assert later.reasons == [f"{SIM}: Precip (mm) 10 (alert)"]
    watch.stop()


def test_a_warning_is_unsafe_only_when_asked(sim: IndiClient) -> None:
    lenient = WeatherWatch(sim, [SIM], max_age_s=120, unsafe_on="alert")
    strict = WeatherWatch(sim, [SIM], max_age_s=120, unsafe_on="warning")
    lenient.start()
    strict.start()
    sim.set_number(SIM, "WEATHER_CONTROL", {**CALM, "Temperature": 27})  # within 15 % of the 30 °C edge
    refresh(sim, SIM)
    warned = wait_for(strict, lambda c: not c.safe and c.parameters["WEATHER_TEMPERATURE"] == 27)
    assert any("Temperature (C) 27 (warning)" in r for r in warned.reasons), warned.reasons
    still = lenient.conditions()
    assert still.safe and any("warning" in r for r in still.reasons), still


def test_a_reading_grown_stale_is_unsafe(sim: IndiClient) -> None:
    sim.set_number(SIM, "WEATHER_UPDATE", {"PERIOD": 1})
    watch = WeatherWatch(sim, [SIM], max_age_s=2.0)
    watch.start()
    wait_for(watch, lambda c: c.safe)
    time.sleep(2.5)
    assert watch.conditions().safe, "a reading every second stays fresh"
    sim.set_number(SIM, "WEATHER_UPDATE", {"PERIOD": 0})  # the driver stops its periodic updates
    stale = wait_for(watch, lambda c: not c.safe, timeout=8)
    (reason,) = stale.reasons
    assert "stale: no reading for" in reason and "periodic updates are off" in reason
    assert stale.age_s is not None and stale.age_s > 2.0


def test_missing_or_disconnected_devices_are_unsafe(sim: IndiClient) -> None:
    assert WeatherWatch(sim, [], 60).conditions() == Conditions(True, ["no weather device"], {}, None)
    (missing,) = WeatherWatch(sim, ["Roof Station"], 60).conditions().reasons
    assert "Roof Station: not found" in missing
    watch = WeatherWatch(sim, [SIM], 60)
    watch.start()
    refresh(sim, SIM)
    wait_for(watch, lambda c: c.safe)
    sim.set_switch(SIM, "CONNECTION", ["DISCONNECT"])
    gone = wait_for(watch, lambda c: not c.safe)
    assert gone.reasons == [f"{SIM}: disconnected"]
    watch.start()  # connects it again
    wait_for(watch, lambda c: c.safe)


# ---- the weather safety proxy, fed by its script ------------------------------------------------
@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[IndiServer, IndiClient, Path]]:
    script = tmp_path / "weather_status.sh"
    report = tmp_path / "status.json"
    report.write_text(json.dumps({"roof_status": {"open_ok": 1, "reasons": ""}}))
    script.write_text(f"#!/bin/sh\ncat {report}\n")
    script.chmod(0o755)
    with IndiServer(["indi_weather_safety_proxy"], env={"HOME": str(tmp_path)}) as server:
        client = IndiClient("127.0.0.1", server.port)
        client.connect()
        client.wait_property(PROXY, "WEATHER_SAFETY_SCRIPTS", timeout=10)
        client.set_text(PROXY, "WEATHER_SAFETY_SCRIPTS", {"WEATHER_SAFETY_SCRIPT": str(script)})
        yield server, client, script
        client.disconnect()


def test_proxy_unsafe_names_the_scripts_reasons(proxy: tuple[IndiServer, IndiClient, Path]) -> None:
    _server, client, script = proxy
    watch = WeatherWatch(client, [PROXY], max_age_s=120)
    watch.start()
    wait_for(watch, lambda c: c.safe and c.parameters.get("WEATHER_SAFETY") == 1)
    (script.parent / "status.json").write_text(json.dumps({"roof_status": {"open_ok": 0, "reasons": "rain"}}))
    sent = time.monotonic()
    refresh(client, PROXY)
    wait_for(watch, lambda c: not c.safe)
    assert time.monotonic() - sent < 0.5
    wait_for(watch, lambda c: c.reasons == [f"{PROXY}: Weather Safety 0 (alert) (rain)"])


def test_proxy_with_a_hung_script_goes_stale_then_missing(proxy: tuple[IndiServer, IndiClient, Path]) -> None:
    server, client, script = proxy
    watch = WeatherWatch(client, [PROXY], max_age_s=2.0)
    watch.start()
    wait_for(watch, lambda c: c.safe)
    client.set_number(PROXY, "WEATHER_UPDATE", {"PERIOD": 1})
    time.sleep(2.5)
    assert watch.conditions().safe, "a reading every second stays fresh"
    script.write_text("#!/bin/sh\nsleep 60\n")  # the driver waits on popen: no more readings
    stale = wait_for(watch, lambda c: not c.safe, timeout=8)
    assert "stale: no reading for" in stale.reasons[0]
    server.driver_command("stop indi_weather_safety_proxy")
    gone = wait_for(watch, lambda c: any("not found" in r for r in c.reasons))
    assert not gone.safe


# ---- a replay of the AAG Cloud Watcher (INDI 2.x layout) ----------------------------------------
def test_replayed_cloudwatcher_flipped_cloud_range_and_rain(tmp_path: Path) -> None:
    with ReplayServer(["aag_cloudwatcher"], home=tmp_path / "indi", time_factor=1.0) as server:
        feed = server.home / "AAG_Cloud_Watcher_NG_feed.json"
        feed.parent.mkdir(parents=True, exist_ok=True)
        feed.write_text(json.dumps({"WEATHER_WIND_SPEED": 5, "WEATHER_RAIN": 2900, "WEATHER_CLOUD": -45}))
        client = IndiClient("127.0.0.1", server.port)
        client.connect()
        client.wait_devices([AAG])
        watch = WeatherWatch(client, [AAG], max_age_s=30)
        watch.start()
        # -45 °C is outside the flipped range: clear (waited for: the driver's defaults come first)
        clear = wait_for(watch, lambda c: c.safe and c.parameters.get("WEATHER_CLOUD") == -45)
        assert clear.parameters["WEATHER_CLOUD"] == -45
        assert client.get(AAG, "SAFETY_STATUS").state == "Ok"
        feed.write_text(json.dumps({"WEATHER_CLOUD": 10}))  # inside: overcast
        refresh(client, AAG)
        wait_for(watch, lambda c: c.reasons == [f"{AAG}: Cloud (corrected infrared sky temperature °C) 10 (alert)"])
        assert not watch.conditions().safe and client.get(AAG, "SAFETY_STATUS").state == "Alert"
        feed.write_text("not json")  # the sensor fails: the old readings stay, the update is retried
        refresh(client, AAG)
        feed.write_text(json.dumps({"WEATHER_CLOUD": -45}))
        refresh(client, AAG)
        wait_for(watch, lambda c: c.safe)
        client.disconnect()
