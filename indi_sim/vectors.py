"""Small builders and readers for the INDI properties every simulated device uses.

indipydriver's vectors are plain containers; these keep the five device modules to what is
particular about each device (and the property definitions identical in form across devices).
"""

from __future__ import annotations

from datetime import datetime

from indipydriver import IPyDriver, NumberMember, SwitchMember, SwitchVector, TextMember, TextVector

from indi_sim.config import DRIVER_EXEC

VERSION = "1.0"
INTERFACE = {"telescope": 1 << 0, "ccd": 1 << 1, "filter": 1 << 4, "dustcap": 1 << 9, "lightbox": 1 << 10}


def number(name: str, label: str, fmt: str, lo: float, hi: float, step: float, value: float) -> NumberMember:
    return NumberMember(name, label, format=fmt, min=lo, max=hi, step=step, membervalue=value)


def switches(names: dict[str, str], on: str | None) -> list[SwitchMember]:
    return [SwitchMember(k, v, membervalue="On" if k == on else "Off") for k, v in names.items()]


def connection(connected: bool) -> SwitchVector:
    return SwitchVector("CONNECTION", "Connection", "Main Control", "rw", "OneOfMany", "Ok" if connected else "Idle",
                        switches({"CONNECT": "Connect", "DISCONNECT": "Disconnect"}, "CONNECT" if connected else "DISCONNECT"))


def driver_info(name: str, interface: int) -> TextVector:
    return TextVector("DRIVER_INFO", "Driver Info", "General Info", "ro", "Idle", [
        TextMember("DRIVER_NAME", "Name", name), TextMember("DRIVER_EXEC", "Exec", DRIVER_EXEC),
        TextMember("DRIVER_VERSION", "Version", VERSION), TextMember("DRIVER_INTERFACE", "Interface", str(interface)),
    ])


def switched_on(vector: SwitchVector) -> str | None:
    """The element that is On (the first one for AnyOfMany), None when all are Off."""
    for name, member in vector.data.items():
        if member.membervalue == "On":
            return str(name)
    return None


def turned_on(values: dict[str, str]) -> str | None:
    """The element a client's new switch vector turns On."""
    return next((k for k, val in values.items() if val == "On"), None)


def set_one(vector: SwitchVector, element: str) -> None:
    for name in vector.data:
        vector[name] = "On" if name == element else "Off"


def to_float(text: str) -> float:
    """An INDI number as a client sent it (decimal or sexagesimal)."""
    return float(IPyDriver.indi_number_to_float(text))


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


async def refuse(vector: object, why: str) -> None:
    """Answer a client's request with Alert and the reason; the property keeps its values."""
    await vector.send_setVector(message=why, state="Alert")  # type: ignore[attr-defined]
