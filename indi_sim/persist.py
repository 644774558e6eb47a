"""Settings a driver keeps between runs, as real INDI drivers keep them in `~/.indi/<device>_config.xml`.

libindi's `saveConfig` writes the rw properties a driver chooses (indiccd.cpp: transfer format,
compression, upload mode, capture format, frame, binning; camera drivers their gain, offset and
modes; wheels their filter names) as `newXVector` elements, and `loadConfig` replays them on the
next CONNECT. So whatever the last client left (compression, a native transfer, 8-bit, a
sub-frame) is what the next client finds; HOME decides where (tests give each server its own).
"""

from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

TAGS = {"SwitchVector": ("newSwitchVector", "oneSwitch"), "NumberVector": ("newNumberVector", "oneNumber"),
        "TextVector": ("newTextVector", "oneText")}


def config_dir() -> Path:
    """Where drivers keep their configs: $INDICONFIG's folder if set (libindi honours it), else ~/.indi."""
    override = os.environ.get("INDICONFIG")
    return Path(override).parent if override else Path.home() / ".indi"


class DriverConfig:
    """One device's saved settings: vector name -> {element: value text}, in a libindi-style XML file."""

    def __init__(self, device: str, folder: Path | None = None) -> None:
        self.path = (folder or config_dir()) / f"{device.replace(' ', '_')}_config.xml"
        self.saved: dict[str, dict[str, str]] = {}
        self.kinds: dict[str, str] = {}
        with contextlib.suppress(OSError, ET.ParseError):
            for vec in ET.parse(self.path).getroot():
                name = vec.get("name")
                if name:
                    self.saved[name] = {one.get("name", ""): (one.text or "").strip() for one in vec}
                    self.kinds[name] = vec.tag

    def values(self, name: str) -> dict[str, str] | None:
        return self.saved.get(name)

    def save(self, device: str, vector: Any) -> None:
        """Record the vector's current values and rewrite the file (atomically: a crash keeps the old one)."""
        kind = type(vector).__name__
        if kind not in TAGS:
            return
        values: dict[str, str] = {}
        for element, member in vector.data.items():
            number = kind == "NumberVector"
            values[str(element)] = repr(float(member.getfloatvalue())) if number else str(member.membervalue)
        self.saved[vector.name] = values
        self.kinds[vector.name] = TAGS[kind][0]
        root = ET.Element("INDIDriver")
        for name, members in self.saved.items():
            tag = self.kinds[name]
            one = "one" + tag[3:].replace("Vector", "")
            vec = ET.SubElement(root, tag, device=device, name=name)
            for element, text in members.items():
                ET.SubElement(vec, one, name=element).text = text
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(ET.tostring(root) + b"\n")
        os.replace(tmp, self.path)
