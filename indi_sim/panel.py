"""The simulated flip-flat: a dust cap that closes over the aperture and a light panel behind it.

With the cap closed the camera sees the panel light, plus a fraction of the open sky when the cap
leaks (SIM_LIGHT_LEAK); with it open it sees the sky. Like the Alnitak Flip-Flat
(indi drivers/auxiliary/flip_flat.cpp, `EnableLightBox`), the light cannot be switched while the
cap is open: the request is refused, FLAT_LIGHT_CONTROL keeps its switches and stays in Alert
until the next request on it succeeds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from indipydriver import NumberVector, SwitchVector

from indi_sim.device import SimDevice
from indi_sim.faults import PANEL_FAULTS, fault_switches
from indi_sim.vectors import (
    INTERFACE,
    connection,
    driver_info,
    number,
    refuse,
    set_one,
    switched_on,
    switches,
    to_float,
    turned_on,
)
from indi_sim.world import Observatory

CAP_MOVE_S = 4.0  # simulated seconds for the cap to open or close


class FlipFlat(SimDevice):
    """CAP_PARK, FLAT_LIGHT_CONTROL and FLAT_LIGHT_INTENSITY, as INDI's dust cap and light box interfaces."""

    def __init__(self, driver: Any, world: Observatory, name: str) -> None:
        super().__init__(driver, world, name)
        self._cap_task: asyncio.Task[None] | None = None

    def properties(self) -> list[Any]:
        world, cfg = self.world, self.world.cfg
        return [
            connection(cfg.connected),
            driver_info("obsagent simulated flip-flat", INTERFACE["dustcap"] | INTERFACE["lightbox"]),
            SwitchVector("CAP_PARK", "Dust Cap", "Main Control", "rw", "OneOfMany", "Ok",
                         switches({"PARK": "Park", "UNPARK": "Unpark"}, "PARK")),
            SwitchVector("FLAT_LIGHT_CONTROL", "Flat Light", "Main Control", "rw", "OneOfMany", "Ok",
                         switches({"FLAT_LIGHT_ON": "On", "FLAT_LIGHT_OFF": "Off"}, "FLAT_LIGHT_OFF")),
            NumberVector("FLAT_LIGHT_INTENSITY", "Brightness", "Main Control", "rw", "Ok", [
                number("FLAT_LIGHT_INTENSITY_VALUE", "Value", "%3.0f", 0, world.model.optics.panel_max_brightness, 1, 0)]),
            fault_switches(PANEL_FAULTS, world.faults),
            NumberVector("SIM_LIGHT_LEAK", "Light leak", "Simulation", "rw", "Ok", [
                number("LEAK_FRACTION", "Fraction of sky", "%.6f", 0, 1, 0, world.light_leak)]),
        ]

    async def event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w = self.world
        if name == "CAP_PARK":
            chosen = turned_on(values)
            if chosen is None:
                return
            if self._cap_task is not None and not self._cap_task.done():
                await refuse(vector, "the cap is moving")
                return
            self._cap_task = asyncio.create_task(self._move_cap(chosen == "PARK"))
        elif name == "FLAT_LIGHT_CONTROL":
            chosen = turned_on(values)
            if chosen is not None and switched_on(self["CAP_PARK"]) == "UNPARK":
                await refuse(vector, "Cannot control light while cap is unparked.")
                return
            if chosen is not None:
                set_one(vector, chosen)
                w.light_on = chosen == "FLAT_LIGHT_ON"
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "FLAT_LIGHT_INTENSITY":
            value = to_float(values["FLAT_LIGHT_INTENSITY_VALUE"])
            hi = w.model.optics.panel_max_brightness
            if not 0 <= value <= hi:
                await refuse(vector, f"brightness {value:g} outside 0..{hi}")
                return
            w.brightness = value
            vector["FLAT_LIGHT_INTENSITY_VALUE"] = value  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]

    async def _move_cap(self, close: bool) -> None:
        w = self.world
        vec = self["CAP_PARK"]
        await vec.send_setVector(state="Busy", message="closing cap" if close else "opening cap")
        await w.clock.sleep(CAP_MOVE_S)
        if "FAULT_CAP_JAM" in w.faults:
            set_one(vec, "PARK" if w.cap_closed else "UNPARK")
            await vec.send_setVector(state="Alert", message="cap jammed: motor stalled")
            return
        w.cap_closed = close
        set_one(vec, "PARK" if close else "UNPARK")
        await vec.send_setVector(state="Ok", message="cap closed" if close else "cap open")

    async def light_leak_event(self, vector: object, values: dict[str, str]) -> None:
        """SIM_LIGHT_LEAK: the fraction of open-sky light that reaches the sensor past the closed cap."""
        w = self.world
        w.light_leak = to_float(values["LEAK_FRACTION"])
        vector["LEAK_FRACTION"] = w.light_leak  # type: ignore[index]
        await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
