"""The simulated filter wheel: slots named by the config; a move takes simulated time per slot."""

from __future__ import annotations

import asyncio
from typing import Any

from indipydriver import NumberVector, TextMember, TextVector

from indi_sim.device import SimDevice
from indi_sim.vectors import INTERFACE, connection, driver_info, number, refuse, to_float
from indi_sim.world import Observatory

WHEEL_SLOT_S = 1.0  # simulated seconds per slot


class FilterWheel(SimDevice):
    """FILTER_SLOT and FILTER_NAME; the filter in the light path is `world.slot`. Filter names are
    kept in the config between runs, as indifilterinterface.cpp does."""

    SAVED = frozenset({"FILTER_NAME"})

    def __init__(self, driver: Any, world: Observatory, name: str) -> None:
        super().__init__(driver, world, name)
        self._wheel_task: asyncio.Task[None] | None = None

    def properties(self) -> list[Any]:
        world, cfg = self.world, self.world.cfg
        n = len(world.filter_names)
        return [
            connection(cfg.connected),
            driver_info("obsagent simulated filter wheel", INTERFACE["filter"]),
            NumberVector("FILTER_SLOT", "Filter Slot", "Filter Wheel", "rw", "Ok", [
                number("FILTER_SLOT_VALUE", "Filter", "%3.0f", 1, n, 1, world.slot)]),
            TextVector("FILTER_NAME", "Filter", "Filter Wheel", "rw", "Ok", [
                TextMember(f"FILTER_SLOT_NAME_{i + 1}", f"Filter #{i + 1}", name) for i, name in enumerate(world.filter_names)]),
        ]

    async def event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w = self.world
        if name == "FILTER_SLOT":
            target = int(round(to_float(values["FILTER_SLOT_VALUE"])))
            if not 1 <= target <= len(w.filter_names):
                await refuse(vector, f"slot {target} outside 1..{len(w.filter_names)}")
                return
            if self._wheel_task is not None and not self._wheel_task.done():
                self._wheel_task.cancel()
            self._wheel_task = asyncio.create_task(self._move_wheel(target))
        elif name == "FILTER_NAME":
            for element, text in values.items():
                vector[element] = text  # type: ignore[index]
                w.filter_names[int(element.rsplit("_", 1)[1]) - 1] = text
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]

    async def _move_wheel(self, target: int) -> None:
        w = self.world
        vec = self["FILTER_SLOT"]
        n = len(w.filter_names)
        steps = min((target - w.slot) % n, (w.slot - target) % n)
        await vec.send_setVector(state="Busy")
        await w.clock.sleep(steps * WHEEL_SLOT_S)
        w.slot = target
        vec["FILTER_SLOT_VALUE"] = target
        await vec.send_setVector(state="Ok")
