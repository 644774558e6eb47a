"""What every simulated device is to the driver: a name, its properties, and its answers to clients."""

from __future__ import annotations

from typing import Any

from indi_sim.world import Observatory


class SimDevice:
    """One device of the observatory; the driver routes each client request to its `event`."""

    def __init__(self, driver: Any, world: Observatory, name: str) -> None:
        self.driver = driver  # the IPyDriver that hosts this device's vectors once it has started
        self.world = world
        self.name = name

    def __getitem__(self, vector_name: str) -> Any:
        return self.driver[self.name][vector_name]

    def properties(self) -> list[Any]:
        """The vectors this device defines, in the order clients see them."""
        raise NotImplementedError

    async def event(self, name: str, vector: object, values: dict[str, str]) -> None:
        """A client's new values for one of this device's vectors (the device is connected)."""
        raise NotImplementedError
