"""Flip-flat / light box capability: dust cap (CAP_PARK), light (FLAT_LIGHT_CONTROL), brightness.

The cap and the light may be two devices (a light-only panel and a separate motorised cover):
`cap_device` names the cover's device, by default the panel itself. The DustCap interface
(libindi `indidustcapinterface.cpp`) starts with both CAP_PARK switches off: the cap's state is
then *unknown* (`cap_closed()` is None) and is only known after we command it and the driver
confirms. The LightBox interface (`indilightboxinterface.cpp`) applies a per-filter brightness
preset (FLAT_LIGHT_FILTER_INTENSITY, one element per filter name) on every filter change; our
trained brightness must win, so presets are switched off (set to 0, which the interface skips).
"""

from __future__ import annotations

import contextlib

from agent.devices.client import IndiClient
from agent.devices.discover import capabilities
from agent.errors import PropertyMissing


class FlatPanel:
    def __init__(
        self, client: IndiClient, name: str, move_timeout: float = 60.0, cap_device: str | None = None
    ) -> None:
        self.client = client
        self.name = name
        self.cap_device = cap_device or name
        self.move_timeout = move_timeout

    def connect(self, timeout: float = 15.0) -> None:
        self.client.connect_device(self.name, timeout=timeout)
        self.client.wait_property(self.name, "FLAT_LIGHT_CONTROL", timeout=timeout)
        # Capabilities after connecting: the Flip-Flat sets its DUSTCAP bit only once it knows the
        # model (flip_flat.cpp); wait for the properties its interfaces promise, as they may arrive
        # a moment after the first ones (a missing cap must mean "no cap", not "not yet").
        if self.cap_device != self.name:
            self.client.connect_device(self.cap_device, timeout=timeout)
        if "dustcap" in capabilities(self.client, self.cap_device):
            self.client.wait_property(self.cap_device, "CAP_PARK", timeout=timeout)
        if "lightbox" in capabilities(self.client, self.name):
            with contextlib.suppress(PropertyMissing):
                self.client.wait_property(self.name, "FLAT_LIGHT_INTENSITY", timeout=5.0)
        self.disable_filter_presets()

    def disable_filter_presets(self) -> None:
        """Set every per-filter brightness preset to 0 (the LightBox interface then leaves the
        brightness alone on a filter change) and check the driver took it."""
        prop = "FLAT_LIGHT_FILTER_INTENSITY"
        if not self.client.has(self.name, prop):
            return
        values = self.client.get(self.name, prop).values
        if any(float(v) for v in values.values()):
            self.client.set_number(self.name, prop, dict.fromkeys(values, 0.0), timeout=self.move_timeout)
            left = {k: v for k, v in self.client.get(self.name, prop).values.items() if float(v)}
            if left:
                raise PropertyMissing(f"{self.name} kept its filter brightness presets {left}; clear them in the driver")

    @property
    def has_cap(self) -> bool:
        return self.client.has(self.cap_device, "CAP_PARK")

    @property
    def has_brightness(self) -> bool:
        return self.client.has(self.name, "FLAT_LIGHT_INTENSITY")

    def _cap(self, element: str, what: str) -> None:
        if not self.has_cap:
            raise PropertyMissing(f"{self.name} has no dust cap (CAP_PARK); it is a light box only")
        # always sent, even when the switch already shows it: an unknown cap must be commanded
        base = self.client.send_switch(self.cap_device, "CAP_PARK", [element])
        self.client.wait_for(
            self.cap_device,
            "CAP_PARK",
            lambda s: s.version > base and s.state == "Ok" and bool(s.values.get(element)),
            self.move_timeout,
            f"{self.cap_device} cap to {what}",
            alert_after=base,
        )

    def start_close(self) -> int | None:
        """Command the cap closed and return at once (the version to wait on); None without a cap."""
        if not self.has_cap:
            return None
        return self.client.send_switch(self.cap_device, "CAP_PARK", ["PARK"])

    def wait_closed(self, base: int) -> None:
        self.client.wait_for(
            self.cap_device,
            "CAP_PARK",
            lambda s: s.version > base and s.state == "Ok" and bool(s.values.get("PARK")),
            self.move_timeout,
            f"{self.cap_device} cap to close",
            alert_after=base,
        )

    def close_cap(self) -> None:
        """Park the cap (closed over the telescope)."""
        self._cap("PARK", "close")

    def open_cap(self) -> None:
        self._cap("UNPARK", "open")

    def ensure_closed(self) -> None:
        """Close the cap unless it is *known* closed (an unknown cap is commanded and verified)."""
        if self.cap_closed() is not True:
            self.close_cap()

    def ensure_open(self) -> None:
        """Open the cap unless it is known open; the light goes off first where it is on."""
        if self.cap_closed() is not False:
            if self.light_on():
                self.light(False)
            self.open_cap()

    def cap_closed(self) -> bool | None:
        """True closed, False open, None when there is no cap or its state is unknown (no switch
        on, or the last move ended in Alert, as indidustcapinterface.cpp defines it)."""
        if not self.has_cap:
            return None
        snap = self.client.get(self.cap_device, "CAP_PARK")
        if snap.state == "Alert" or not any(snap.values.get(e) for e in ("PARK", "UNPARK")):
            return None
        return bool(snap.values.get("PARK"))

    def light(self, on: bool) -> None:
        """Switch the light. Off when it already shows off sends nothing: the Flip-Flat refuses every
        light command while its cap is open (flip_flat.cpp), even one that changes nothing."""
        element = "FLAT_LIGHT_ON" if on else "FLAT_LIGHT_OFF"
        if not on and self.client.get(self.name, "FLAT_LIGHT_CONTROL").values.get(element):
            return
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
        got = self.brightness()
        if abs(got - value) > 0.5:
            raise PropertyMissing(f"{self.name} did not take brightness {value:g} (reports {got:g})")
