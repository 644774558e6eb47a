"""Readout modes: one abstraction over the properties real drivers use for them.

A readout mode changes read noise, bias and full well, so frames of two modes never share
calibration. Drivers publish it in different ways (sources in indilib/indi-3rdparty):

- QHY (`indi-qhy/qhy_ccd.cpp`): `READ_MODE`, a *number* vector with element `MODE` (0..n-1);
  the mode is named by its number ("0", "1", ...).
- Player One (`indi-playerone/playerone_base.cpp`): `SENSOR_MODE` switch, elements `MODE_0..n`
  labelled with the SDK's names ("Normal", "LowNoise"); when the camera is in its last mode the
  driver leaves every switch off (`mode < modeCount - 1`), so "none on" is not "no mode".
- Touptek family (`indi-toupbase/indi_toupbase.cpp`: ToupTek, Altair, Omegon, Ogma, MallinCam,
  StarShootG, Nncam, Meade): `TC_CONVERSION_GAIN` (GAIN_LOW/GAIN_HIGH/GAIN_HDR = "LCG"/"HCG"/"HDR")
  plus the on/off switches `TC_LOW_NOISE` and `TC_HIGHFULLWELL` (INDI_ENABLED/INDI_DISABLED); a
  mode is their combination, written e.g. "HCG+LowNoise".
- Atik (`indi-atik/atik_ccd.cpp`): `CCD_CONTROL_PRESETS` (PRESET_CUSTOM/LOW/MEDIUM/HIGH), the
  gain/offset presets of Horizon-type CMOS cameras; named by label.

`CCD_CAPTURE_FORMAT` is the *pixel format* ("Raw 8 bit"/"Raw 16 bit", "Mono") and never a
readout mode; capture hygiene sets it (see `hygiene.py`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from agent.devices.client import IndiClient
from agent.errors import PropertyMissing

CONVERSION_GAIN = {"GAIN_LOW": "LCG", "GAIN_HIGH": "HCG", "GAIN_HDR": "HDR"}
TOGGLES = {"TC_LOW_NOISE": "LowNoise", "TC_HIGHFULLWELL": "HighFullWell"}
SWITCH_MODES = ("SENSOR_MODE", "CCD_CONTROL_PRESETS")


@dataclass(frozen=True)
class ReadoutModes:
    """The readout-mode mechanism one camera driver uses (`kind`), read and set by mode name."""

    client: IndiClient
    device: str

    @property
    def kind(self) -> str | None:
        if self.client.has(self.device, "READ_MODE"):
            return "READ_MODE"
        for prop in SWITCH_MODES:
            if self.client.has(self.device, prop):
                return prop
        if self.client.has(self.device, "TC_CONVERSION_GAIN") or any(self.client.has(self.device, t) for t in TOGGLES):
            return "touptek"
        return None

    def names(self) -> tuple[str, ...]:
        kind = self.kind
        if kind is None:
            return ()
        if kind == "READ_MODE":
            lim = self.client.get(self.device, "READ_MODE").limits["MODE"]
            return tuple(str(i) for i in range(int(lim.minimum), int(lim.maximum) + 1))
        if kind in SWITCH_MODES:
            snap = self.client.get(self.device, kind)
            return tuple(snap.labels.get(k) or k for k in snap.values)
        return tuple("+".join(p for p in combo if p) for combo in itertools.product(*self._touptek_parts()))

    def _touptek_parts(self) -> list[list[str]]:
        parts: list[list[str]] = []
        if self.client.has(self.device, "TC_CONVERSION_GAIN"):
            elements = self.client.get(self.device, "TC_CONVERSION_GAIN").values
            parts.append([CONVERSION_GAIN.get(e, e) for e in elements])
        for prop, word in TOGGLES.items():
            if self.client.has(self.device, prop):
                parts.append(["", word])
        return parts

    def current(self) -> str | None:
        kind = self.kind
        if kind is None:
            return None
        if kind == "READ_MODE":
            return str(int(self.client.get(self.device, "READ_MODE").values["MODE"]))
        if kind in SWITCH_MODES:
            snap = self.client.get(self.device, kind)
            on = snap.on_switches()
            if not on:
                return None  # unknown (Player One in its last mode); set it to know it
            return snap.labels.get(on[0]) or on[0]
        words: list[str] = []
        if self.client.has(self.device, "TC_CONVERSION_GAIN"):
            on = self.client.get(self.device, "TC_CONVERSION_GAIN").on_switches()
            if not on:
                return None
            words.append(CONVERSION_GAIN.get(on[0], on[0]))
        for prop, word in TOGGLES.items():
            if self.client.has(self.device, prop) and self.client.get(self.device, prop).values.get("INDI_ENABLED"):
                words.append(word)
        return "+".join(words)

    def set(self, mode: str, timeout: float = 10.0) -> None:
        """Select `mode` (a name from `names()`, case-insensitive) and check the driver took it."""
        kind = self.kind
        if kind is None:
            raise PropertyMissing(
                f"{self.device} has no readout-mode property (READ_MODE, SENSOR_MODE, TC_CONVERSION_GAIN, "
                "CCD_CONTROL_PRESETS); remove readout_mode from the sequence file"
            )
        wanted = self._canonical(mode)
        if kind == "READ_MODE":
            self.client.set_number(self.device, "READ_MODE", {"MODE": float(wanted)}, timeout=timeout)
        elif kind in SWITCH_MODES:
            snap = self.client.get(self.device, kind)
            element = next(k for k in snap.values if (snap.labels.get(k) or k) == wanted)
            self.client.set_switch(self.device, kind, [element], timeout=timeout)
        else:
            words = set(wanted.split("+"))
            if self.client.has(self.device, "TC_CONVERSION_GAIN"):
                elements = self.client.get(self.device, "TC_CONVERSION_GAIN").values
                element = next(e for e in elements if CONVERSION_GAIN.get(e, e) in words)
                self.client.set_switch(self.device, "TC_CONVERSION_GAIN", [element], timeout=timeout)
            for prop, word in TOGGLES.items():
                if self.client.has(self.device, prop):
                    on = "INDI_ENABLED" if word in words else "INDI_DISABLED"
                    self.client.set_switch(self.device, prop, [on], timeout=timeout)
        now = self.current()
        if now != wanted:
            raise PropertyMissing(f"{self.device} did not take readout mode {wanted!r} (reports {now!r})")

    def _canonical(self, mode: str) -> str:
        names = self.names()
        key = _norm(mode)
        for name in names:
            if _norm(name) == key:
                return name
        raise PropertyMissing(
            f"{self.device} has no readout mode {mode!r} (has {', '.join(names)}); fix readout_mode in the sequence file"
        )


def _norm(mode: str) -> str:
    """Mode names compare without case, spaces or the order of '+' parts."""
    return "+".join(sorted(part.strip().lower().replace(" ", "") for part in str(mode).split("+")))
