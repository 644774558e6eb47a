"""What the INDI callbacks copy out of libindi: plain snapshots of properties and BLOB arrivals.

Nothing above this module holds a PyIndi object; a snapshot is immutable data the waiting thread
can read after libindi has moved on.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

import PyIndi

STATE_NAMES = {PyIndi.IPS_IDLE: "Idle", PyIndi.IPS_OK: "Ok", PyIndi.IPS_BUSY: "Busy", PyIndi.IPS_ALERT: "Alert"}
KIND_NAMES = {
    PyIndi.INDI_NUMBER: "number",
    PyIndi.INDI_SWITCH: "switch",
    PyIndi.INDI_TEXT: "text",
    PyIndi.INDI_LIGHT: "light",
    PyIndi.INDI_BLOB: "blob",
}


@dataclass(frozen=True)
class NumberLimits:
    minimum: float
    maximum: float
    step: float


@dataclass
class PropertySnapshot:
    """A copy of one INDI property vector, safe to use on any thread."""

    device: str
    name: str
    kind: str  # number / switch / text / light / blob
    state: str  # Idle / Ok / Busy / Alert
    permission: str  # ro / wo / rw
    values: dict[str, Any]
    limits: dict[str, NumberLimits] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    version: int = 0

    def on_switches(self) -> list[str]:
        return [k for k, v in self.values.items() if v]


@dataclass
class BlobArrival:
    device: str
    prop: str
    element: str
    data: bytes
    fmt: str
    seq: int


def copy_property(prop: Any) -> PropertySnapshot:
    kind = prop.getType()
    values: dict[str, Any] = {}
    limits: dict[str, NumberLimits] = {}
    labels: dict[str, str] = {}
    if kind == PyIndi.INDI_NUMBER:
        for e in PyIndi.PropertyNumber(prop):
            values[e.getName()] = float(e.getValue())
            limits[e.getName()] = NumberLimits(float(e.getMin()), float(e.getMax()), float(e.getStep()))
            labels[e.getName()] = e.getLabel()
    elif kind == PyIndi.INDI_SWITCH:
        for e in PyIndi.PropertySwitch(prop):
            values[e.getName()] = e.getState() == PyIndi.ISS_ON
            labels[e.getName()] = e.getLabel()
    elif kind == PyIndi.INDI_TEXT:
        for e in PyIndi.PropertyText(prop):
            values[e.getName()] = e.getText()
            labels[e.getName()] = e.getLabel()
    elif kind == PyIndi.INDI_LIGHT:
        for e in PyIndi.PropertyLight(prop):
            values[e.getName()] = STATE_NAMES.get(e.getState(), str(e.getState()))
    elif kind == PyIndi.INDI_BLOB:
        for e in PyIndi.PropertyBlob(prop):
            values[e.getName()] = None
    perm = {PyIndi.IP_RO: "ro", PyIndi.IP_WO: "wo", PyIndi.IP_RW: "rw"}.get(prop.getPermission(), "rw")
    return PropertySnapshot(
        device=prop.getDeviceName(),
        name=prop.getName(),
        kind=KIND_NAMES.get(kind, "unknown"),
        state=STATE_NAMES.get(prop.getState(), "Idle"),
        permission=perm,
        values=values,
        limits=limits,
        labels=labels,
    )


def blob_bytes(element: Any) -> bytes:
    """The bytes of one BLOB element, exactly as many as arrived.

    pyindi-client 2.3.0's `getblobdata()` copies `size` bytes, which is the *uncompressed* size
    (indiccd.cpp sets it to the FITS length even when the BLOB carries the fpack'd or zlib'd image);
    with compression on it reads past the buffer and the process dies. The real length is
    `getBlobLen()`, and the buffer's address is the SWIG pointer, so we copy exactly that.
    """
    length = int(element.getBlobLen())
    if length <= 0:
        return b""
    pointer = element.getBlob()
    if pointer is None:
        return b""
    return ctypes.string_at(int(pointer), length)
