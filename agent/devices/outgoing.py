"""What we send: new property vectors built apart from libindi's own copy of each property.

libindi applies the driver's updates to its copy on its own thread. Writing our values into that
copy and sending it raced with them: a countdown of CCD_EXPOSURE could replace our exposure with
0.0 between our write and the send (tests/test_devices_race.py). A detached vector cannot be
touched by anyone but us.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import PyIndi

from agent.errors import PropertyMissing


def numbers(live: Any, values: Mapping[str, float], where: str) -> Any:
    current = {e.getName(): float(e.getValue()) for e in live}
    unknown = set(values) - set(current)
    if unknown:
        raise PropertyMissing(f"{where} has no element {sorted(unknown)[0]} (has {sorted(current)})")
    prop = PyIndi.PropertyNumber(len(current))
    for widget, element in zip(prop, current, strict=True):
        widget.setName(element)
        widget.setValue(float(values[element]) if element in values else current[element])
    return prop


def switches(live: Any, on: set[str], exclusive: bool, where: str) -> Any:
    current = {e.getName(): e.getState() == PyIndi.ISS_ON for e in live}
    if not on <= set(current):
        raise PropertyMissing(f"{where} has no element {sorted(on - set(current))} (has {sorted(current)})")
    prop = PyIndi.PropertySwitch(len(current))
    for widget, element in zip(prop, current, strict=True):
        widget.setName(element)
        state = element in on or (current[element] and not exclusive)
        widget.setState(PyIndi.ISS_ON if state else PyIndi.ISS_OFF)
    return prop


def texts(live: Any, values: Mapping[str, str]) -> Any:
    current = {e.getName(): str(e.getText()) for e in live}
    prop = PyIndi.PropertyText(len(current))
    for widget, element in zip(prop, current, strict=True):
        widget.setName(element)
        widget.setText(str(values[element]) if element in values else current[element])
    return prop


def address(prop: Any, device: str, name: str, live: Any) -> None:
    """Name the detached vector after the live one."""
    prop.setDeviceName(device)
    prop.setName(name)
    prop.setBaseDevice(live.getBaseDevice())
