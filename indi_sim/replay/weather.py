"""Weather devices of the replay driver, behaving as libindi's weather interface does.

Follows `libs/indibase/indiweatherinterface.cpp`: a reading every WEATHER_UPDATE period (0: no
periodic updates), retried every 5 s after a failed one (WEATHER_PARAMETERS Alert, old values);
each critical parameter's light is Ok, Busy within PERC_WARN % of an edge of MIN_OK..MAX_OK, Alert
outside (the other way round with ALERT_TYPE 1); WEATHER_STATUS is the worst light, Ok while
WEATHER_OVERRIDE is on. 1.9.9 sends WEATHER_STATUS only when a light changes; profiles with the
`indi2` quirk send it with every reading and mirror it in SAFETY_STATUS (sent when it changes).

The readings come from `<home>/<Device_Name>_feed.json` ({"WEATHER_RAIN": 2900, ...}), read at
each update as the real driver reads its sensor; a missing or unreadable file is a failed update.
Periods run on the replay's time (divided by its time factor) like the rest of the rig.
"""

from __future__ import annotations

import json
import threading
from typing import Any

RANK = {"Idle": 0, "Ok": 1, "Busy": 2, "Alert": 3}
_STATE: dict[str, _Station] = {}


class _Station:
    def __init__(self, rig: Any, dev: Any) -> None:
        self.rig, self.dev = rig, dev
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.feed = rig.home / f"{dev.name.replace(' ', '_')}_feed.json"

    def _loop(self) -> None:
        while self.dev.connected:
            ok = self.update()
            period = float(self.dev.props["WEATHER_UPDATE"].values()["PERIOD"]) if ok else 5.0
            self.wake.wait(period / self.rig.time_factor if period > 0 else None)
            self.wake.clear()

    def update(self) -> bool:
        """checkWeatherUpdate(): read the sensor, set the lights, publish."""
        with self.lock:
            props = self.dev.props
            params = props.get("WEATHER_PARAMETERS")
            if params is None:
                return False
            try:
                values = json.loads(self.feed.read_text())
                for name, value in values.items():
                    if name in params.members:
                        params.members[name]["value"] = float(value)
            except (OSError, ValueError, TypeError):
                params.publish("Alert")
                return False
            changed = self.sync()
            status = props["WEATHER_STATUS"]
            if props["WEATHER_OVERRIDE"].values()["OVERRIDE"]:
                status.state = "Ok"
            if changed or "indi2" in self.dev.p.quirks:
                status.publish()
            self.mirror()
            params.publish("Ok")
            return True

    def sync(self) -> bool:
        """syncCriticalParameters(): each light from its range; True when one changed."""
        props = self.dev.props
        status, params = props["WEATHER_STATUS"], props["WEATHER_PARAMETERS"]
        before = status.values()
        worst = "Idle"
        for name, light in status.members.items():
            light["value"] = check(float(params.members[name]["value"]), props[name].values())
            worst = max(worst, light["value"], key=RANK.__getitem__)
        status.state = worst
        return status.values() != before

    def mirror(self) -> None:
        safety = self.dev.props.get("SAFETY_STATUS")
        state = self.dev.props["WEATHER_STATUS"].state
        if safety is not None and safety.state != state:
            safety.members["SAFETY"]["value"] = state
            safety.publish(state)


def check(value: float, limits: dict[str, Any]) -> str:
    """checkParameterState(): Ok / Busy (warning zone) / Alert, flipped with ALERT_TYPE 1."""
    low, high = float(limits["MIN_OK"]), float(limits["MAX_OK"])
    warn = (high - low) * float(limits["PERC_WARN"]) / 100
    outside = value < low or value > high
    zone = (value < low + warn and low != 0) or (value > high - warn and high != 0)
    if limits.get("ALERT_TYPE"):
        return "Ok" if outside else "Busy" if zone else "Alert"
    return "Alert" if outside else "Busy" if zone else "Ok"


def start(rig: Any, dev: Any) -> None:
    """After CONNECT: the first reading at once, then one every period (updateProperties)."""
    station = _STATE.get(dev.name)
    if station is not None and station.thread.is_alive():
        station.wake.set()
        return
    station = _STATE[dev.name] = _Station(rig, dev)
    station.thread.start()


def apply(rig: Any, dev: Any, v: Any) -> bool | None:
    """processSwitch()/processNumber() of the weather interface; None: published here."""
    station = _STATE.get(dev.name)
    if station is None:
        return True
    with station.lock:
        if v.name == "WEATHER_REFRESH":
            v.members["REFRESH"]["value"] = False
            v.publish("Ok")
            station.update()
            return None
        if v.name == "WEATHER_OVERRIDE":
            status = dev.props["WEATHER_STATUS"]
            if v.values()["OVERRIDE"]:
                v.publish("Busy")
                status.publish("Ok")
            else:
                v.publish("Idle")
                station.sync()
                status.publish()
            station.mirror()
            return None
        if v.name == "WEATHER_UPDATE":
            v.publish("Ok")
            station.wake.set()
            return None
        if v.name in dev.props["WEATHER_STATUS"].members or v.name in dev.props["WEATHER_PARAMETERS"].members:
            if station.sync():
                dev.props["WEATHER_STATUS"].publish()
                station.mirror()
            v.publish("Ok")
            return None
    return True
