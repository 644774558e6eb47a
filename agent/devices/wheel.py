"""Filter wheel capability (FILTER_SLOT, FILTER_NAME)."""

from __future__ import annotations

import contextlib

from agent.devices.client import IndiClient
from agent.errors import IndiError, PropertyMissing


class FilterWheel:
    def __init__(self, client: IndiClient, name: str, move_timeout: float = 60.0) -> None:
        self.client = client
        self.name = name
        self.move_timeout = move_timeout

    def connect(self, timeout: float = 15.0) -> None:
        self.client.connect_device(self.name, timeout=timeout)
        self.client.wait_property(self.name, "FILTER_SLOT", timeout=timeout)
        # FILTER_NAME follows FILTER_SLOT a moment later; a wheel without names is rare but allowed
        with contextlib.suppress(PropertyMissing):
            self.client.wait_property(self.name, "FILTER_NAME", timeout=5.0)

    def names(self) -> list[str]:
        """Filter names in slot order (slot 1 first)."""
        if not self.client.has(self.name, "FILTER_NAME"):
            limits = self.client.get(self.name, "FILTER_SLOT").limits["FILTER_SLOT_VALUE"]
            return [f"Slot {i}" for i in range(int(limits.minimum), int(limits.maximum) + 1)]
        values = self.client.get(self.name, "FILTER_NAME").values
        return [str(values[k]) for k in sorted(values, key=lambda k: int(k.rsplit("_", 1)[-1]))]

    def slot(self) -> int:
        return int(self.client.get(self.name, "FILTER_SLOT").values["FILTER_SLOT_VALUE"])

    def current(self) -> str:
        names = self.names()
        slot = self.slot()
        return names[slot - 1] if 1 <= slot <= len(names) else f"Slot {slot}"

    def slot_of(self, filter_name: str) -> int:
        names = self.names()
        for index, name in enumerate(names, start=1):
            if name.strip().lower() == filter_name.strip().lower():
                return index
        raise IndiError(
            f"filter {filter_name!r} is not in {self.name} (has {', '.join(names)}); fix the filter name"
        )

    def move_to(self, filter_name: str) -> int:
        """Move to the named filter and wait until the wheel reports it there."""
        slot = self.slot_of(filter_name)
        base = self.client.send_number(self.name, "FILTER_SLOT", {"FILTER_SLOT_VALUE": slot})
        self.client.wait_for(
            self.name,
            "FILTER_SLOT",
            lambda s: s.version > base and s.state == "Ok" and int(s.values["FILTER_SLOT_VALUE"]) == slot,
            self.move_timeout,
            f"{self.name} to reach {filter_name}",
        )
        return slot
