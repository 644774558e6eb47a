"""`python -m indi_sim.replay.driver`: an INDI driver replaying real drivers' property layouts.

Run under the real indiserver (stdin/stdout XML). Which devices it hosts comes from
OBSAGENT_REPLAY_PROFILES (comma-separated keys of `profiles.PROFILES`); like a real driver it
defines CONNECTION and DRIVER_INFO at start and the rest only after CONNECT, deletes them on
DISCONNECT, and keeps rw settings in a config file per device under OBSAGENT_REPLAY_HOME (the
first start takes the profile's `left`: what another client left behind). Frames are tiny FITS
made as the current settings say: sub-frame, binning, 8/16-bit, compression (zlib `.fits.z`),
native transfer (`.raw`) and local upload (no BLOB) all behave as in indiccd.cpp.
Written in raw XML rather than indipydriver so permissions, element order, all-off switches and
Alerts that stay are exactly the real drivers'.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from indi_sim.replay import weather
from indi_sim.replay.clock import ReplayClock
from indi_sim.replay.profiles import PROFILES, Profile

_out = threading.Lock()
TAG = {"number": "Number", "switch": "Switch", "text": "Text", "blob": "BLOB", "light": "Light"}


def send(xml: str) -> None:
    with _out:
        sys.stdout.write(xml + "\n")
        sys.stdout.flush()


class Vector:
    def __init__(self, device: str, spec: tuple[Any, ...]) -> None:
        self.device = device
        self.kind, self.name, self.perm, self.rule, members = spec
        self.state = "Idle"
        self.members: dict[str, dict[str, Any]] = {}
        for m in members:
            if self.kind == "number":
                self.members[m[0]] = {"label": m[1], "min": m[2], "max": m[3], "step": m[4], "value": float(m[5])}
            elif self.kind == "switch":
                self.members[m[0]] = {"label": m[1], "value": bool(m[2])}
            else:
                self.members[m[0]] = {"label": m[1], "value": m[2] if len(m) > 2 else ""}

    def _value(self, m: dict[str, Any]) -> str:
        if self.kind == "switch":
            return "On" if m["value"] else "Off"
        if self.kind == "number":
            return repr(float(m["value"]))
        return str(m["value"])

    def define(self) -> None:
        tag = TAG[self.kind]
        rule = f" rule={quoteattr(self.rule)}" if self.kind == "switch" else ""
        parts = [f"<def{tag}Vector device={quoteattr(self.device)} name={quoteattr(self.name)} "
                 f"label={quoteattr(self.name)} group='Main Control' state='{self.state}' perm='{self.perm}'{rule} "
                 "timeout='60'>"]
        for name, m in self.members.items():
            extra = ""
            if self.kind == "number":
                extra = f" format='%g' min='{m['min']}' max='{m['max']}' step='{m['step']}'"
            body = "" if self.kind == "blob" else _esc(self._value(m))
            parts.append(f"<def{tag} name={quoteattr(name)} label={quoteattr(m['label'])}{extra}>{body}</def{tag}>")
        parts.append(f"</def{tag}Vector>")
        send("".join(parts))

    def publish(self, state: str | None = None, message: str | None = None) -> None:
        if state:
            self.state = state
        tag = TAG[self.kind]
        msg = f" message={quoteattr(message)}" if message else ""
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        body = "".join(f"<one{tag} name={quoteattr(n)}>{_esc(self._value(m))}</one{tag}>" for n, m in self.members.items())
        send(f"<set{tag}Vector device={quoteattr(self.device)} name={quoteattr(self.name)} state='{self.state}' "
             f"timestamp='{ts}'{msg}>{body}</set{tag}Vector>")

    def values(self) -> dict[str, Any]:
        return {n: m["value"] for n, m in self.members.items()}

    def on(self) -> str | None:
        return next((n for n, m in self.members.items() if m["value"]), None)

    def set_on(self, element: str) -> None:
        for n, m in self.members.items():
            m["value"] = n == element


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Device:
    def __init__(self, rig: Rig, profile: Profile) -> None:
        self.rig, self.p, self.name = rig, profile, profile.device
        self.connected = False
        self.props: dict[str, Vector] = {}
        self.config = rig.home / f"{self.name.replace(' ', '_')}_config.json"
        if not self.config.exists():
            self.config.write_text(json.dumps(profile.left))
        self.busy_until = 0.0

    def base(self) -> list[Vector]:
        conn = Vector(self.name, ("switch", "CONNECTION", "rw", "OneOfMany",
                                  [("CONNECT", "Connect", self.connected), ("DISCONNECT", "Disconnect", not self.connected)]))
        conn.state = "Ok" if self.connected else "Idle"
        bits = self.p.interface_connected if self.connected and self.p.interface_connected else self.p.interface
        info = Vector(self.name, ("text", "DRIVER_INFO", "ro", None, [
            ("DRIVER_NAME", "Name", self.name), ("DRIVER_EXEC", "Exec", "indi_replay"),
            ("DRIVER_VERSION", "Version", "1.0"), ("DRIVER_INTERFACE", "Interface", str(bits))]))
        return [conn, info]

    def define_base(self) -> None:
        for v in self.base():
            self.props[v.name] = v
            v.define()

    def connect(self) -> None:
        if self.connected:
            self.props["CONNECTION"].publish("Ok")
            return
        self.connected = True
        conn = self.props["CONNECTION"]
        conn.set_on("CONNECT")
        conn.publish("Ok")
        info = self.base()[1]
        self.props["DRIVER_INFO"] = info
        info.publish("Ok")
        saved = json.loads(self.config.read_text()) if self.config.exists() else {}
        for spec in self.p.props:
            v = Vector(self.name, spec)
            self._load(v, saved.get(v.name))
            self.props[v.name] = v
            v.define()
        self.rig.after_connect(self)

    def _load(self, v: Vector, saved: Any) -> None:
        if saved is None:
            return
        if v.kind == "switch" and isinstance(saved, str) and saved in v.members:
            v.set_on(saved)
        elif isinstance(saved, dict):
            for k, val in saved.items():
                if k in v.members:
                    v.members[k]["value"] = val

    def save(self, v: Vector) -> None:
        if v.perm == "ro" or v.name in ("CONNECTION", "CCD_EXPOSURE", "CCD_ABORT_EXPOSURE", "CAP_PARK", "CAP_ABORT",
                                         "FLAT_LIGHT_CONTROL", "EQUATORIAL_EOD_COORD", "TELESCOPE_PARK", "TIME_UTC"):
            return
        saved = json.loads(self.config.read_text()) if self.config.exists() else {}
        saved[v.name] = v.on() if v.kind == "switch" and v.rule == "OneOfMany" else v.values()
        self.config.write_text(json.dumps(saved))

    def disconnect(self) -> None:
        for name in [n for n in self.props if n not in ("CONNECTION", "DRIVER_INFO")]:
            send(f"<delProperty device={quoteattr(self.name)} name={quoteattr(name)}/>")
            del self.props[name]
        self.connected = False
        conn = self.props["CONNECTION"]
        conn.set_on("DISCONNECT")
        conn.publish("Idle")

    def message(self, text: str) -> None:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        send(f"<message device={quoteattr(self.name)} timestamp='{ts}' message={quoteattr(text)}/>")


class Rig:
    """The devices of one replay driver and what they share (light, cap, filter)."""

    def __init__(self, keys: list[str], home: Path, time_factor: float, clock_start: str | None = None) -> None:
        self.home, self.time_factor = home, time_factor
        home.mkdir(parents=True, exist_ok=True)
        self.devices = {PROFILES[k].device: Device(self, PROFILES[k]) for k in keys}
        self.rng = np.random.default_rng(7)
        # simulated time for whole nights (`clock.py`); absent like on a real rig unless asked for
        self.clock = ReplayClock(Vector, clock_start, time_factor) if clock_start else None

    def find(self, kind: str) -> Device | None:
        return next((d for d in self.devices.values() if d.p.kind == kind and d.connected), None)

    def after_connect(self, dev: Device) -> None:
        if dev.p.kind == "weather":
            weather.start(self, dev)
        if dev.p.kind == "camera" and "CCD_TEMPERATURE" in dev.props:
            threading.Thread(target=self._cooler, args=(dev,), daemon=True).start()

    # ---- the world a camera sees -------------------------------------------------------
    def panel_flux(self) -> float:
        """e-/s from a lit panel over a closed (or absent) cap; zero otherwise."""
        flux = 0.0
        for d in self.devices.values():
            if not d.connected or "FLAT_LIGHT_CONTROL" not in d.props:
                continue
            if d.props["FLAT_LIGHT_CONTROL"].values()["FLAT_LIGHT_ON"]:
                level = d.props["FLAT_LIGHT_INTENSITY"].values()["FLAT_LIGHT_INTENSITY_VALUE"]
                flux += 200.0 * float(level)
        return flux

    def _cooler(self, cam: Device) -> None:
        temp = cam.props.get("CCD_TEMPERATURE")
        while cam.connected and temp is not None:
            time.sleep(0.5)
            target = getattr(cam, "target", None)
            value = temp.members["CCD_TEMPERATURE_VALUE"]["value"]
            if temp.perm == "ro" or target is None:
                temp.members["CCD_TEMPERATURE_VALUE"]["value"] = round(18.0 + float(self.rng.normal(0, 0.05)), 2)
                temp.publish("Idle" if temp.perm == "ro" else "Ok")
                continue
            step = 5.0 * self.time_factor * 0.5 / 60.0
            new = value + max(-step, min(step, target - value))
            temp.members["CCD_TEMPERATURE_VALUE"]["value"] = round(new, 2)
            temp.publish("Ok" if abs(new - target) < 0.2 else "Busy")

    # ---- requests ------------------------------------------------------------------------
    def handle(self, el: ET.Element) -> None:
        if el.tag == "getProperties":
            if self.clock is not None:
                self.clock.define()
            for d in self.devices.values():
                if not d.props:
                    d.define_base()
                else:
                    for v in d.props.values():
                        v.define()
            return
        name = el.get("name", "")
        values = {one.get("name", ""): (one.text or "").strip() for one in el}
        if self.clock is not None and el.get("device") == self.clock.name and el.tag.startswith("new"):
            self.clock.handle(name, values)
            return
        dev = self.devices.get(el.get("device", ""))
        if dev is None or not el.tag.startswith("new"):
            return
        if name == "CONNECTION":
            dev.connect() if values.get("CONNECT") == "On" else dev.disconnect()
            return
        found = dev.props.get(name)
        if found is None or not dev.connected:
            return
        v = found
        if v.perm == "ro":
            v.publish("Alert", f"{name} is read only")
            return
        if name == "CCD_TEMPERATURE":  # a set-point: the reading ramps towards it (cooler thread)
            dev.target = float(values.get("CCD_TEMPERATURE_VALUE", "0"))  # type: ignore[attr-defined]
            v.publish("Busy")
            return
        old = {k: dict(m) for k, m in v.members.items()}
        if v.kind == "switch":
            turned = [k for k, s in values.items() if s == "On" and k in v.members]
            if v.rule == "OneOfMany" and turned:
                v.set_on(turned[0])
            else:
                for k, s in values.items():
                    if k in v.members:
                        v.members[k]["value"] = s == "On"
        else:
            for k, s in values.items():
                if k in v.members:
                    v.members[k]["value"] = float(s) if v.kind == "number" else s
        try:
            ok = self.apply(dev, v, values)
        except Exception as exc:  # a bad request must not kill the driver
            dev.message(f"{name}: {exc}")
            ok = False
        if ok is False:
            v.members = old
            v.publish("Alert")
            return
        if ok is not None and v.perm != "wo":  # None: the behaviour published itself
            v.publish("Ok")
        dev.save(v)

    def apply(self, dev: Device, v: Vector, values: dict[str, str]) -> bool | None:
        n = v.name
        if dev.p.kind == "weather":
            return weather.apply(self, dev, v)
        if n == "CCD_EXPOSURE":
            threading.Thread(target=self._expose, args=(dev, float(v.values()["CCD_EXPOSURE_VALUE"])),
                             daemon=True).start()
            v.publish("Busy")
            return None
        if n == "CCD_CONTROL_PRESETS" and v.on() == "PRESET_LOW" and "CCD_CONTROLS" in dev.props:
            c = dev.props["CCD_CONTROLS"]
            c.members["CONTROL_GAIN"]["value"], c.members["CONTROL_OFFSET"]["value"] = 0.0, 10.0
            c.publish("Ok")
        if n == "FLAT_LIGHT_CONTROL" and "refuse_light_while_open" in dev.p.quirks:
            cap = dev.props.get("CAP_PARK")
            if cap is not None and cap.values()["UNPARK"]:
                dev.message("[ERROR] Cannot control light while cap is unparked.")  # flip_flat.cpp
                return False
        if n == "CAP_PARK":
            v.publish("Busy")
            threading.Timer(0.3, lambda: v.publish("Ok")).start()
            return None
        if n == "FILTER_SLOT":
            v.publish("Busy")
            def arrived() -> None:
                v.publish("Ok")
                self._filter_changed(int(v.values()["FILTER_SLOT_VALUE"]))

            threading.Timer(0.2, arrived).start()
            return None
        if n in ("EQUATORIAL_EOD_COORD",):
            v.publish("Busy")
            threading.Timer(0.3, lambda: v.publish("Ok")).start()
            return None
        if n == "TELESCOPE_TRACK_STATE":
            v.publish("Busy" if v.on() == "TRACK_ON" else "Idle")
            return None
        if n == "CCD_FRAME_RESET" and "CCD_FRAME" in dev.props:
            f = dev.props["CCD_FRAME"]
            for k, val in (("X", 0), ("Y", 0), ("WIDTH", f.members["WIDTH"]["max"]), ("HEIGHT", f.members["HEIGHT"]["max"])):
                f.members[k]["value"] = float(val)
            f.publish("Ok")
            v.members["RESET"]["value"] = False
        return True

    def _filter_changed(self, slot: int) -> None:
        """indilightboxinterface.cpp: a preset > 0 for the new filter sets the brightness."""
        for d in self.devices.values():
            presets = d.props.get("FLAT_LIGHT_FILTER_INTENSITY")
            if d.connected and presets is not None:
                values = list(presets.values().values())
                if 1 <= slot <= len(values) and values[slot - 1] > 0:
                    light = d.props["FLAT_LIGHT_INTENSITY"]
                    light.members["FLAT_LIGHT_INTENSITY_VALUE"]["value"] = values[slot - 1]
                    light.publish("Ok")

    def _expose(self, cam: Device, seconds: float) -> None:
        exp = cam.props["CCD_EXPOSURE"]
        time.sleep(max(0.02, seconds / self.time_factor))
        if not cam.connected:
            return
        p = cam.props
        frame = {k: int(v) for k, v in p["CCD_FRAME"].values().items()}
        xb, yb = (int(p["CCD_BINNING"].values()[k]) for k in ("HOR_BIN", "VER_BIN"))
        w, h = max(1, frame["WIDTH"] // xb), max(1, frame["HEIGHT"] // yb)
        ftype = p["CCD_FRAME_TYPE"].on() or "FRAME_LIGHT"
        offset = 0.0
        for prop, el in (("CCD_OFFSET", "OFFSET"), ("CCD_CONTROLS", "Offset"), ("CCD_CONTROLS", "CONTROL_OFFSET")):
            if prop in p and el in p[prop].members:
                offset = float(p[prop].members[el]["value"])
        level = 500.0 + 4.0 * offset
        if ftype != "FRAME_BIAS":
            level += 0.5 * seconds
        if ftype in ("FRAME_FLAT", "FRAME_LIGHT"):
            level += self.panel_flux() * seconds + (20.0 * seconds if ftype == "FRAME_LIGHT" else 0.0)
        img = self.rng.normal(level, 8.0, size=(h, w)).clip(0, 65535)
        fmt = p["CCD_CAPTURE_FORMAT"].on() if "CCD_CAPTURE_FORMAT" in p else None
        eight = fmt is not None and "8" in fmt
        data = (img / 256).astype(np.uint8) if eight else img.astype(np.uint16)
        exp.members["CCD_EXPOSURE_VALUE"]["value"] = 0.0
        exp.publish("Ok")
        if p["UPLOAD_MODE"].on() == "UPLOAD_LOCAL":
            cam.message("Image saved to /home/user/image_001.fits")
            return
        from astropy.io import fits

        hdu = fits.PrimaryHDU(data)
        temp = float(p["CCD_TEMPERATURE"].values()["CCD_TEMPERATURE_VALUE"])
        for key, value in (("EXPTIME", seconds), ("XBINNING", xb), ("YBINNING", yb), ("CCD-TEMP", temp),
                           ("INSTRUME", cam.name), ("FRAME", ftype.split("_")[1].title())):
            hdu.header[key] = value
        buf = io.BytesIO()
        hdu.writeto(buf)
        blob, ext = buf.getvalue(), ".fits"
        if p["CCD_TRANSFER_FORMAT"].on() == "FORMAT_NATIVE":
            blob, ext = data.tobytes(), ".raw"
        size = len(blob)
        if p["CCD_COMPRESSION"].on() == "INDI_ENABLED":
            blob, ext = zlib.compress(blob, 6), ext + ".z"
        text = base64.b64encode(blob).decode()
        text = "\n".join(text[i:i + 72] for i in range(0, len(text), 72))
        send(f"<setBLOBVector device={quoteattr(cam.name)} name='CCD1' state='Ok'>"
             f"<oneBLOB name='CCD1' size='{size}' enclen='{len(blob) * 4 // 3 + 4}' format='{ext}'>{text}</oneBLOB>"
             "</setBLOBVector>")


def main() -> None:
    keys = [k for k in os.environ.get("OBSAGENT_REPLAY_PROFILES", "").split(",") if k]
    home = Path(os.environ.get("OBSAGENT_REPLAY_HOME", Path.home() / ".indi"))
    rig = Rig(keys, home, float(os.environ.get("OBSAGENT_REPLAY_TIME_FACTOR", "100")),
              os.environ.get("OBSAGENT_REPLAY_START") or None)
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
    parser.feed("<stream>")
    depth_tags = {"getProperties", "newNumberVector", "newSwitchVector", "newTextVector", "newBLOBVector"}
    for chunk in iter(lambda: os.read(0, 65536), b""):
        parser.feed(chunk.decode(errors="replace"))
        for _event, element in parser.read_events():  # type: ignore[misc]
            if isinstance(element, ET.Element) and element.tag in depth_tags:
                rig.handle(element)


if __name__ == "__main__":
    main()
