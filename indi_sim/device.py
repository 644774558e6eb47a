"""What every simulated device is to the driver: a name, its properties, and its answers to clients.

Like a real driver, a device defines only CONNECTION, DRIVER_INFO and its simulation controls
(SIM_FAULTS, SIM_LIGHT_LEAK: the simulator's counterpart of libindi's SIMULATION switch) until a
client connects it; the rest is defined on CONNECT, then the saved settings are replayed as
libindi's `loadConfig` does (`persist.py`), and deleted again on DISCONNECT.
"""

from __future__ import annotations

from typing import Any

from indi_sim.persist import DriverConfig
from indi_sim.world import Observatory

BEFORE_CONNECT = frozenset({"CONNECTION", "DRIVER_INFO", "SIM_FAULTS", "SIM_LIGHT_LEAK"})


class SimDevice:
    """One device of the observatory; the driver routes each client request to its `event`."""

    SAVED: frozenset[str] = frozenset()  # rw properties kept in the device's config file

    def __init__(self, driver: Any, world: Observatory, name: str) -> None:
        self.driver = driver  # the IPyDriver that hosts this device's vectors once it has started
        self.world = world
        self.name = name
        self.config = DriverConfig(name)

    def __getitem__(self, vector_name: str) -> Any:
        return self.driver[self.name][vector_name]

    def properties(self) -> list[Any]:
        """The vectors this device defines, in the order clients see them."""
        raise NotImplementedError

    async def event(self, name: str, vector: object, values: dict[str, str]) -> None:
        """A client's new values for one of this device's vectors (the device is connected)."""
        raise NotImplementedError

    def connected_vectors(self) -> list[Any]:
        """The vectors that exist only while the device is connected."""
        return [v for name, v in self.driver[self.name].data.items() if name not in BEFORE_CONNECT]

    def hide_until_connected(self) -> None:
        """At start, before any client connected us: only the BEFORE_CONNECT vectors exist."""
        for vector in self.connected_vectors():
            vector.enable = False

    async def define_connected(self) -> None:
        """CONNECT: define the device's properties, then replay its saved settings."""
        for vector in self.connected_vectors():
            vector.enable = True
            await vector.send_defVector()
        await self.load_config()

    async def load_config(self) -> None:
        """Apply the saved settings through the same path a client's request takes (libindi's loadConfig)."""
        dev = self.driver[self.name]
        for name in sorted(self.SAVED):
            saved = self.config.values(name)
            if saved is None or name not in dev.data:
                continue
            vector = dev[name]
            values = {k: v for k, v in saved.items() if k in vector.data}
            if values:
                await self.event(name, vector, values)

    async def delete_connected(self) -> None:
        """DISCONNECT: the device's properties go away until the next CONNECT."""
        for vector in self.connected_vectors():
            await vector.send_delProperty()

    def remember(self, name: str, vector: Any) -> None:
        """A request on `name` succeeded: keep it in the config when the device saves that property."""
        if name in self.SAVED and getattr(vector, "state", None) != "Alert":
            self.config.save(self.name, vector)
