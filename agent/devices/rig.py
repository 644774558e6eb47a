"""Connect the devices a task needs, by name or by capability."""

from __future__ import annotations

from dataclasses import dataclass

from agent.devices.camera import Camera
from agent.devices.client import IndiClient
from agent.devices.discover import capabilities, find_device
from agent.devices.flatpanel import FlatPanel
from agent.devices.mount import Mount
from agent.devices.wheel import FilterWheel
from agent.errors import DeviceMissing


@dataclass
class Rig:
    client: IndiClient
    camera: Camera
    wheel: FilterWheel | None = None
    panel: FlatPanel | None = None
    mount: Mount | None = None


def pick_wheel(client: IndiClient, camera: str, name: str | None) -> str | None:
    """A dedicated wheel beats the camera's built-in filter slots; None when there is neither.

    A wheel is a device that *defines* FILTER_SLOT after connecting: QHY (qhy_ccd.cpp) and SBIG
    (sbig_ccd.cpp) set the filter interface bit whether or not a wheel is attached.
    """
    if name:
        return find_device(client, "wheel", name)
    dedicated = [d for d in client.devices() if d != camera and "wheel" in capabilities(client, d)]
    if dedicated:
        return dedicated[0]
    return camera if client.has(camera, "FILTER_SLOT") else None  # the camera is connected by now


def connect_rig(
    client: IndiClient,
    camera: str | None = None,
    wheel: str | None = None,
    panel: str | None = None,
    mount: str | None = None,
    need_wheel: bool = False,
    dust_cap: str | None = None,
    need_panel: bool = False,
    need_mount: bool = False,
) -> Rig:
    client.settle(quiet=0.3, timeout=5.0)
    cam = Camera(client, find_device(client, "camera", camera))
    cam.connect()
    rig = Rig(client=client, camera=cam)
    wheel_name = pick_wheel(client, cam.name, wheel)
    if wheel_name:
        rig.wheel = FilterWheel(client, wheel_name)
        rig.wheel.connect()
    elif need_wheel:
        raise DeviceMissing(f"no filter wheel on {client.address}; start its driver or drop --filter")
    if panel or need_panel or dust_cap:
        rig.panel = FlatPanel(client, find_device(client, "lightbox", panel), cap_device=dust_cap)
        rig.panel.connect()
    if mount or need_mount:
        rig.mount = Mount(client, find_device(client, "mount", mount))
        rig.mount.connect()
    return rig
