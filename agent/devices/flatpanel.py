"""Flip-flat / light box capability: dust cap (CAP_PARK), light (FLAT_LIGHT_CONTROL), brightness."""

from __future__ import annotations

import contextlib

from agent.devices.client import IndiClient
from agent.devices.discover import capabilities
from agent.errors import PropertyMissing


class FlatPanel:
    def __init__(self, client: IndiClient, name: str, move_timeout: float = 60.0) -> None:
        self.client = client
        self.name = name
        self.move_timeout = move_timeout

    def connect(self, timeout: float = 15.0) -> None:
        self.client.connect_device(self.name, timeout=timeout)
        self.client.wait_property(self.name, "FLAT_LIGHT_CONTROL", timeout=timeout)
        # The driver says what it is; wait for the properties its interfaces promise, as they may
        # arrive a moment after the first ones (a missing cap must mean "no cap", not "not yet").
        caps = capabilities(self.client, self.name)
        if "dustcap" in caps:
            self.client.wait_property(self.name, "CAP_PARK", timeout=timeout)
        if "lightbox" in caps:
            with contextlib.suppress(PropertyMissing):
                self.client.wait_property(self.name, "FLAT_LIGHT_INTENSITY", timeout=5.0)

    @property
    def has_cap(self) -> bool:
        return self.client.has(self.name, "CAP_PARK")

    @property
    def has_brightness(self) -> bool:
        return self.client.has(self.name, "FLAT_LIGHT_INTENSITY")

    def _cap(self, element: str, what: str) -> None:
        if not self.has_cap:
            raise PropertyMissing(f"{self.name} has no dust cap (CAP_PARK); it is a light box only")
        base = self.client.send_switch(self.name, "CAP_PARK", [element])
        self.client.wait_for(
            self.name,
            "CAP_PARK",
            lambda s: s.version > base and s.state == "Ok" and bool(s.values.get(element)),
            self.move_timeout,
            f"{self.name} cap to {what}",
        )

    def close_cap(self) -> None:
        """Park the cap (closed over the telescope)."""
        self._cap("PARK", "close")

    def open_cap(self) -> None:
        self._cap("UNPARK", "open")

    def cap_closed(self) -> bool | None:
        if not self.has_cap:
            return None
        return bool(self.client.get(self.name, "CAP_PARK").values.get("PARK"))

    def light(self, on: bool) -> None:
        element = "FLAT_LIGHT_ON" if on else "FLAT_LIGHT_OFF"
        self.client.set_switch(self.name, "FLAT_LIGHT_CONTROL", [element], timeout=self.move_timeout)

    def light_on(self) -> bool:
        return bool(self.client.get(self.name, "FLAT_LIGHT_CONTROL").values.get("FLAT_LIGHT_ON"))

    def brightness_range(self) -> tuple[float, float]:
        if not self.has_brightness:
            raise PropertyMissing(f"{self.name} has no FLAT_LIGHT_INTENSITY; its brightness is fixed")
        limits = self.client.get(self.name, "FLAT_LIGHT_INTENSITY").limits["FLAT_LIGHT_INTENSITY_VALUE"]
        return limits.minimum, limits.maximum

    def brightness(self) -> float:
        if not self.has_brightness:
            raise PropertyMissing(f"{self.name} has no FLAT_LIGHT_INTENSITY; its brightness is fixed")
        return float(self.client.get(self.name, "FLAT_LIGHT_INTENSITY").values["FLAT_LIGHT_INTENSITY_VALUE"])

    def set_brightness(self, value: float) -> None:
        low, high = self.brightness_range()
        value = min(max(value, low), high)
        self.client.set_number(
            self.name, "FLAT_LIGHT_INTENSITY", {"FLAT_LIGHT_INTENSITY_VALUE": value}, timeout=self.move_timeout
        )
