"""INDI device layer: one client and one class per capability. Nothing above sees PyIndi."""

from agent.devices.camera import Camera, CameraInfo
from agent.devices.client import IndiClient, PropertySnapshot, ServerLost
from agent.devices.discover import describe, find_device, parse_address
from agent.devices.flatpanel import FlatPanel
from agent.devices.frame import FRAME_TYPES, IMAGETYP, Frame
from agent.devices.mount import Mount
from agent.devices.wheel import FilterWheel

__all__ = [
    "Camera", "CameraInfo", "FilterWheel", "FlatPanel", "Frame", "FRAME_TYPES", "IMAGETYP",
    "IndiClient", "Mount", "PropertySnapshot", "ServerLost", "describe", "find_device", "parse_address",
]
