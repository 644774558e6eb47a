"""The simulated weather station, with the property layout of INDI's weather interface.

Copied from libindi `libs/indibase/indiweatherinterface.cpp` + `indiweather.cpp` and the stock
`drivers/weather/weathersimulator.cpp`: WEATHER_UPDATE (PERIOD, s), WEATHER_REFRESH, WEATHER_OVERRIDE,
WEATHER_STATUS (a light per critical parameter, the vector's state the worst of them),
SAFETY_STATUS, WEATHER_PARAMETERS (ro, Ok range as element min/max) and one rw range vector per
parameter named after it (MIN_OK, MAX_OK, PERC_WARN, ALERT_TYPE), GEOGRAPHIC_COORD; DRIVER_INTERFACE
has the weather bit (128). Values come from the weather scenario (`indi_sim.scenario`) at the
simulated time; like a driver's timer, the station republishes them every PERIOD seconds of
simulated time (messages timestamped in simulated time), so a client can judge staleness. The
scenario's `stale` fault stops those updates; `driver_crash` ends this driver process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from datetime import datetime, timedelta
from typing import Any, NoReturn

from indipydriver import (
    LightMember,
    LightVector,
    NumberVector,
    SwitchMember,
    SwitchVector,
    TextMember,
    TextVector,
)

from indi_sim.config import save_clock
from indi_sim.device import SimDevice
from indi_sim.scenario import QUANTITIES, Timeline
from indi_sim.vectors import connection, driver_info, number, to_float, turned_on
from indi_sim.world import Observatory

log = logging.getLogger("indi_obsagent_sim")

WEATHER_INTERFACE = 1 << 7  # basedevice.h WEATHER_INTERFACE
# scenario quantity -> (parameter name, label): names as weathersimulator.cpp and openweathermap.cpp
PARAMETERS = {
    "temperature": ("WEATHER_TEMPERATURE", "Temperature (C)"),
    "humidity": ("WEATHER_HUMIDITY", "Humidity (%)"),
    "wind": ("WEATHER_WIND_SPEED", "Wind (kph)"),
    "rain": ("WEATHER_RAIN_HOUR", "Precip (mm)"),
    "clouds": ("WEATHER_CLOUD_COVER", "Clouds (%)"),
}
ORDER = ("Idle", "Ok", "Busy", "Alert")  # IPState order: the overall state is the worst
MAX_SLEEP_S = 0.25  # wall seconds: how long the station loop sleeps at most


def parameter_state(value: float, min_ok: float, max_ok: float, warn_percent: float, flip: bool = False) -> str:
    """Ok / Busy (warning) / Alert as `WeatherInterface::checkParameterState` decides it.

    Outside [min_ok, max_ok] is Alert; within warn_percent of the range from a non-zero limit is
    Busy. A parameter with min = max = 0 (rain) has no range: any non-zero value is Alert.
    """
    if min_ok == max_ok:
        return "Alert" if min_ok == 0 and value != 0 else "Ok"
    warn = (max_ok - min_ok) * warn_percent / 100.0
    near = (value < min_ok + warn and min_ok != 0) or (value > max_ok - warn and max_ok != 0)
    outside = value < min_ok or value > max_ok
    if flip:
        return "Ok" if outside else "Busy" if near else "Alert"
    return "Alert" if outside else "Busy" if near else "Ok"


class WeatherStation(SimDevice):
    """A weather device whose readings follow the scenario in simulated time."""

    def __init__(self, driver: Any, world: Observatory, name: str, timeline: Timeline) -> None:
        super().__init__(driver, world, name)
        self.timeline = timeline
        scenario = timeline.scenario
        self.ranged = [q for q in QUANTITIES if scenario.limit(q).min_ok != scenario.limit(q).max_ok]
        # libindi's saveConfigItems: the update period and every parameter range
        self.SAVED = frozenset({"WEATHER_UPDATE", *(PARAMETERS[q][0] for q in self.ranged)})
        self.due: datetime | None = None  # simulated instant of the next periodic update
        self.updates = 0
        self._poke = asyncio.Event()

    def properties(self) -> list[Any]:
        cfg, scenario = self.world.cfg, self.timeline.scenario
        ranges = []
        for q in self.ranged:
            lim = scenario.limit(q)
            name, label = PARAMETERS[q]
            ranges.append(NumberVector(name, label, "Parameters", "rw", "Idle", [
                number("MIN_OK", "OK range min", "%.2f", -1e6, 1e6, 0, lim.min_ok),
                number("MAX_OK", "OK range max", "%.2f", -1e6, 1e6, 0, lim.max_ok),
                number("PERC_WARN", "% for Warning", "%.f", 0, 100, 5, lim.warn_percent),
                number("ALERT_TYPE", "Flip alerting to in-bounds", "%.f", 0, 1, 1, 0)]))
        return [
            connection(cfg.connected),
            driver_info("obsagent simulated weather", WEATHER_INTERFACE),
            TextVector("ACTIVE_DEVICES", "Snoop devices", "Options", "rw", "Idle", [
                TextMember("ACTIVE_GPS", "GPS", "GPS Simulator")]),
            NumberVector("WEATHER_UPDATE", "Update", "Main Control", "rw", "Idle", [
                number("PERIOD", "Period (s)", "%.f", 0, 3600, 60, scenario.update_period)]),
            SwitchVector("WEATHER_REFRESH", "Weather", "Main Control", "rw", "AtMostOne", "Idle", [
                SwitchMember("REFRESH", "Refresh", "Off")]),
            SwitchVector("WEATHER_OVERRIDE", "Safety", "Main Control", "rw", "AnyOfMany", "Idle", [
                SwitchMember("OVERRIDE", "Override Status", "Off")]),
            LightVector("WEATHER_STATUS", "Status", "Main Control", "Idle", [
                LightMember(PARAMETERS[q][0], PARAMETERS[q][1], "Idle") for q in QUANTITIES]),
            LightVector("SAFETY_STATUS", "Safety", "Main Control", "Idle", [LightMember("SAFETY", "Safety", "Idle")]),
            NumberVector("WEATHER_PARAMETERS", "Parameters", "Parameters", "ro", "Ok", [
                number(PARAMETERS[q][0], PARAMETERS[q][1], "%.2f", scenario.limit(q).min_ok, scenario.limit(q).max_ok, 0, 0)
                for q in QUANTITIES]),
            *ranges,
            NumberVector("GEOGRAPHIC_COORD", "Location", "Site Management", "rw", "Ok", [
                number("LAT", "Lat (dd:mm:ss)", "%010.6m", -90, 90, 0, cfg.lat),
                number("LONG", "Lon (dd:mm:ss)", "%010.6m", 0, 360, 0, cfg.lon % 360.0),
                number("ELEV", "Elevation (m)", "%g", -200, 10000, 0, cfg.elevation)]),
        ]

    def connected_vectors(self) -> list[Any]:
        """ACTIVE_DEVICES is defined before CONNECT too (Weather::ISGetProperties)."""
        return [v for v in super().connected_vectors() if v.name != "ACTIVE_DEVICES"]

    def is_connected(self) -> bool:
        return bool(self.driver.connected(self.name))

    async def define_connected(self) -> None:
        """CONNECT: the properties, the saved period and ranges, then a first update at once."""
        await super().define_connected()
        self.update_now()

    def update_now(self) -> None:
        self.due = self.world.clock.now()
        self._poke.set()

    def period(self) -> float:
        return float(self["WEATHER_UPDATE"]["PERIOD"])

    # ------------------------------------------------------------------ client requests
    async def event(self, name: str, vector: Any, values: dict[str, str]) -> None:
        if name == "WEATHER_UPDATE":
            vector["PERIOD"] = max(0.0, min(3600.0, to_float(values["PERIOD"])))
            await vector.send_setVector(state="Ok")
            if self.period() > 0:  # the timer restarts with the new interval; 0 disables updates
                self.due = self.world.clock.now() + timedelta(seconds=self.period())
                self._poke.set()
            else:
                self.due = None
        elif name == "WEATHER_REFRESH":
            vector["REFRESH"] = "Off"
            await vector.send_setVector(state="Ok")
            self.update_now()
        elif name == "WEATHER_OVERRIDE":
            vector["OVERRIDE"] = "On" if turned_on(values) == "OVERRIDE" else "Off"
            if vector["OVERRIDE"] == "On":
                log.warning("Weather override is enabled. Observatory is not safe.")
            await vector.send_setVector(state="Busy" if vector["OVERRIDE"] == "On" else "Idle")
            await self.send_status(self.world.clock.now())
        elif name in self.SAVED:  # a parameter's range
            for element in ("MIN_OK", "MAX_OK", "PERC_WARN", "ALERT_TYPE"):
                if element in values:
                    vector[element] = to_float(values[element])
            await vector.send_setVector(state="Ok")
            await self.send_status(self.world.clock.now())
        elif name in ("GEOGRAPHIC_COORD", "ACTIVE_DEVICES"):
            for element, text in values.items():
                vector[element] = to_float(text) if name == "GEOGRAPHIC_COORD" else text
            await vector.send_setVector(state="Ok")

    # ------------------------------------------------------------------ readings
    def states(self) -> dict[str, str]:
        """Each parameter's light from its current value and range."""
        params = self["WEATHER_PARAMETERS"]
        out = {}
        for q in QUANTITIES:
            name = PARAMETERS[q][0]
            value = float(params[name])
            if q in self.ranged:
                r = self[name]
                out[name] = parameter_state(value, float(r["MIN_OK"]), float(r["MAX_OK"]), float(r["PERC_WARN"]),
                                            float(r["ALERT_TYPE"]) >= 0.5)
            else:
                lim = self.timeline.scenario.limit(q)
                out[name] = parameter_state(value, lim.min_ok, lim.max_ok, lim.warn_percent)
        return out

    async def send_status(self, now: datetime) -> None:
        """WEATHER_STATUS: lights and the worst of them (Ok while overridden); SAFETY_STATUS follows."""
        status = self["WEATHER_STATUS"]
        lights = self.states()
        for name, state in lights.items():
            status[name] = state
        overall = max(lights.values(), key=ORDER.index, default="Idle")
        if self["WEATHER_OVERRIDE"]["OVERRIDE"] == "On":
            overall = "Ok"
        await status.send_setVector(state=overall, timestamp=now)
        safety = self["SAFETY_STATUS"]
        if safety.state != overall:
            await safety.send_setVector(state=overall, timestamp=now)

    async def update(self, now: datetime) -> None:
        """One reading, as `checkWeatherUpdate` publishes it: the status lights, then the parameters."""
        values = self.timeline.weather(now)
        params = self["WEATHER_PARAMETERS"]
        for q in QUANTITIES:
            params[PARAMETERS[q][0]] = round(values[q], 2)
        await self.send_status(now)
        await params.send_setVector(state="Ok", timestamp=now)
        self.updates += 1

    # ------------------------------------------------------------------ the station's timer
    async def run(self) -> None:
        """Follow the scenario in simulated time: clouds over the telescope, periodic updates, crashes."""
        clock, timeline = self.world.clock, self.timeline
        await asyncio.sleep(MAX_SLEEP_S)  # indiserver asks for our definitions first
        last = clock.now()
        while not self.driver.stop:
            try:
                now = clock.now()
                self.world.cloud_cover = timeline.sky_cloud(now)
                for crash in timeline.of_kind("driver_crash"):
                    if last < crash.at <= now:
                        self.crash(crash.at)
                last = now
                if self.due is not None and now >= self.due and self.is_connected():
                    self.due = now + timedelta(seconds=self.period()) if self.period() > 0 else None
                    if not timeline.stale(now):
                        await self.update(now)
                due = self.due if self.is_connected() else None  # disconnected: no timer to wait for
                targets = [t for t in (due, timeline.next_transition(now)) if t is not None]
                wait = min([clock.wall_until(t) for t in targets], default=MAX_SLEEP_S)
            except Exception:
                log.exception("weather station")
                wait = MAX_SLEEP_S
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), timeout=min(max(wait, 0.0005), MAX_SLEEP_S))

    def crash(self, at: datetime) -> NoReturn:
        """The scenario's driver_crash: the process dies at once (indiserver restarts it when allowed)."""
        log.error("scenario: driver crash at %s (simulated)", at.isoformat())
        cfg = self.world.cfg
        if cfg.clock_file:
            save_clock(cfg.clock_file, self.world.clock, cfg.start)
        sys.stdout.flush()
        os._exit(1)
