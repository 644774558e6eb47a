"""Find devices on a server and what they can do (DRIVER_INTERFACE bits, else the properties seen)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.devices.client import IndiClient
from agent.errors import DeviceMissing, ObsAgentError

# INDI::BaseDevice::DRIVER_INTERFACE bits
INTERFACE_BITS = {
    "mount": 1 << 0,
    "camera": 1 << 1,
    "guider": 1 << 2,
    "focuser": 1 << 3,
    "wheel": 1 << 4,
    "dome": 1 << 5,
    "gps": 1 << 6,
    "weather": 1 << 7,
    "dustcap": 1 << 9,
    "lightbox": 1 << 10,
}
# Properties that reveal a capability when DRIVER_INFO is absent or says too little.
CAPABILITY_PROPS = {
    "camera": "CCD_EXPOSURE",
    "wheel": "FILTER_SLOT",
    "lightbox": "FLAT_LIGHT_CONTROL",
    "dustcap": "CAP_PARK",
    "mount": "EQUATORIAL_EOD_COORD",
}


@dataclass
class DeviceDescription:
    name: str
    driver: str
    connected: bool
    capabilities: list[str]
    settings: dict[str, object] = field(default_factory=dict)


def parse_address(address: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if not colon:
        host, port = address or "localhost", "7624"  # a bare host name: INDI's port
    if not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ObsAgentError(f"bad INDI address {address!r}; use HOST:PORT, e.g. localhost:7624")
    return host, int(port)


def capabilities(client: IndiClient, device: str) -> list[str]:
    caps: set[str] = set()
    if client.has(device, "DRIVER_INFO"):
        try:
            bits = int(str(client.get(device, "DRIVER_INFO").values.get("DRIVER_INTERFACE", "0")))
        except ValueError:
            bits = 0
        caps |= {name for name, bit in INTERFACE_BITS.items() if bits & bit}
    caps |= {name for name, prop in CAPABILITY_PROPS.items() if client.has(device, prop)}
    return sorted(caps)


def describe(client: IndiClient, device: str) -> DeviceDescription:
    info = client.get(device, "DRIVER_INFO").values if client.has(device, "DRIVER_INFO") else {}
    connected = client.has(device, "CONNECTION") and bool(client.get(device, "CONNECTION").values.get("CONNECT"))
    desc = DeviceDescription(
        name=device, driver=str(info.get("DRIVER_EXEC", "")), connected=connected,
        capabilities=capabilities(client, device),
    )
    wanted = {
        "CCD_INFO": ("CCD_MAX_X", "CCD_MAX_Y", "CCD_BITSPERPIXEL", "CCD_PIXEL_SIZE"),
        "CCD_TEMPERATURE": ("CCD_TEMPERATURE_VALUE",),
        "CCD_GAIN": ("GAIN",),
        "CCD_OFFSET": ("OFFSET",),
        "FILTER_SLOT": ("FILTER_SLOT_VALUE",),
        "FLAT_LIGHT_INTENSITY": ("FLAT_LIGHT_INTENSITY_VALUE",),
        "FLAT_LIGHT_CONTROL": ("FLAT_LIGHT_ON",),
        "CAP_PARK": ("PARK",),
        "TELESCOPE_PARK": ("PARK",),
        "TELESCOPE_TRACK_STATE": ("TRACK_ON",),
    }
    for prop, elements in wanted.items():
        if client.has(device, prop):
            values = client.get(device, prop).values
            for element in elements:
                if element in values:
                    desc.settings[f"{prop}.{element}"] = values[element]
    if client.has(device, "FILTER_NAME"):
        desc.settings["filters"] = list(client.get(device, "FILTER_NAME").values.values())
    if client.has(device, "FILTER_SLOT"):  # a wheel is a defined FILTER_SLOT, not the interface bit
        limits = client.get(device, "FILTER_SLOT").limits.get("FILTER_SLOT_VALUE")
        desc.settings["filter_slots"] = int(limits.maximum) if limits else 0
    if client.has(device, "CCD_EXPOSURE"):
        from agent.devices.readout import ReadoutModes

        modes = ReadoutModes(client, device)
        if modes.kind:
            desc.settings["readout_modes"] = list(modes.names())
            desc.settings["readout_mode"] = modes.current()
        temp = client.get(device, "CCD_TEMPERATURE") if client.has(device, "CCD_TEMPERATURE") else None
        desc.settings["cooled"] = client.has(device, "CCD_COOLER") or (temp is not None and temp.permission != "ro")
        if client.has(device, "CCD_CONTROLS"):
            desc.settings["controls"] = dict(client.get(device, "CCD_CONTROLS").values)
    return desc


def find_device(client: IndiClient, capability: str, name: str | None = None) -> str:
    """The named device, or the only/first device with the capability; a clear error otherwise."""
    client.wait_driver_info()
    devices = client.devices()
    if name:
        if name not in devices:
            client.wait_devices([name], timeout=5.0)
        return name
    matches = [d for d in devices if capability in capabilities(client, d)]
    if not matches:
        raise DeviceMissing(
            f"no {capability} found on {client.address} (devices: {', '.join(devices) or 'none'}); "
            f"start its driver or name the device"
        )
    return matches[0]
