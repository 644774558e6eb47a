"""`indi_obsagent_sim`: one indipydriver executable hosting the simulated observatory.

Devices (names from the config): a camera, a filter wheel, a flip-flat (dust cap + light), a mount
and a clock. They share one `Observatory`, so the cap, the light, the filter, the pointing and the
Sun all change what the camera sees. Runs under indiserver over stdin/stdout; configuration comes
from the JSON file named by OBSAGENT_SIM_CONFIG. Property reference: docs/simulator.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from indipydriver import (
    BLOBMember,
    BLOBVector,
    Device,
    IPyDriver,
    NumberMember,
    NumberVector,
    SwitchMember,
    SwitchVector,
    TextMember,
    TextVector,
)

from indi_sim import astro
from indi_sim.config import DRIVER_EXEC, SimClock, SimConfig, load_config, parse_instant
from indi_sim.model import DEFAULT_FILTERS, FilterSpec, SimModel

log = logging.getLogger("indi_obsagent_sim")

VERSION = "1.0"
INTERFACE = {"telescope": 1 << 0, "ccd": 1 << 1, "filter": 1 << 4, "dustcap": 1 << 9, "lightbox": 1 << 10}

FRAME_TYPES = {"FRAME_LIGHT": "light", "FRAME_BIAS": "bias", "FRAME_DARK": "dark", "FRAME_FLAT": "flat"}
IMAGETYP = {"light": "Light Frame", "bias": "Bias Frame", "dark": "Dark Frame", "flat": "Flat Field"}

CAMERA_FAULTS = {
    "FAULT_EXPOSURE_HANG": "Exposure never completes",
    "FAULT_BLOB_TRUNCATED": "Truncated image",
    "FAULT_BLOB_CORRUPT": "Corrupt image",
    "FAULT_DRIVER_EXIT": "Driver exits mid-exposure",
    "FAULT_COOLER_WEAK": "Cooler cannot reach set-point",
}
PANEL_FAULTS = {"FAULT_CAP_JAM": "Cap jams"}

TICK_S = 0.25  # wall seconds between hardware updates
CAP_MOVE_S = 4.0  # simulated seconds for the cap to open or close
WHEEL_SLOT_S = 1.0  # simulated seconds per slot
SLEW_DEG_S = 4.0  # simulated slew rate
WEAK_COOLER_DELTA_C = 5.0


@dataclass
class Cooler:
    """Sensor temperature that ramps toward the set-point and settles (or cannot reach it)."""

    ambient_c: float
    max_delta_c: float
    rate_c_per_min: float
    temperature_c: float = 0.0
    set_point_c: float = 0.0
    on: bool = False
    weak: bool = False
    tau_s: float = 60.0

    def __post_init__(self) -> None:
        self.temperature_c = self.ambient_c
        self.set_point_c = self.ambient_c

    @property
    def delta_c(self) -> float:
        return WEAK_COOLER_DELTA_C if self.weak else self.max_delta_c

    def target(self) -> float:
        return max(self.set_point_c, self.ambient_c - self.delta_c) if self.on else self.ambient_c

    def advance(self, sim_seconds: float) -> None:
        if sim_seconds <= 0:
            return
        gap = self.target() - self.temperature_c
        step = gap * (1.0 - math.exp(-sim_seconds / self.tau_s))
        limit = self.rate_c_per_min * sim_seconds / 60.0
        self.temperature_c += max(-limit, min(limit, step))

    def power_percent(self) -> float:
        if not self.on:
            return 0.0
        return max(0.0, min(100.0, 100.0 * (self.ambient_c - self.temperature_c) / self.delta_c))


@dataclass
class Observatory:
    """The shared world every device reads and changes."""

    cfg: SimConfig
    clock: SimClock
    model: SimModel
    cooler: Cooler
    filter_names: list[str]
    slot: int = 1
    cap_closed: bool = True
    light_on: bool = False
    brightness: float = 0.0
    light_leak: float = 0.0
    cloud_cover: float = 0.0
    ra_deg: float = 0.0
    dec_deg: float = 0.0
    alt_deg: float = 0.0
    az_deg: float = 0.0
    tracking: bool = False
    parked: bool = True
    faults: set[str] = field(default_factory=set)

    def sun(self, when: datetime | None = None) -> tuple[float, float]:
        return astro.sun_altaz(when or self.clock.now(), self.cfg.lat, self.cfg.lon)

    def field_id(self) -> int:
        return (int(round(self.ra_deg * 2)) % 720) * 1000 + int(round(self.dec_deg * 2)) + 200

    def update_pointing(self, now: datetime) -> None:
        """Tracking keeps RA/Dec and moves alt/az; otherwise the sky drifts past a fixed alt/az."""
        if self.tracking and not self.parked:
            self.alt_deg, self.az_deg = astro.radec_to_altaz(self.ra_deg, self.dec_deg, now, self.cfg.lat, self.cfg.lon)
        else:
            self.ra_deg, self.dec_deg = astro.altaz_to_radec(self.alt_deg, self.az_deg, now, self.cfg.lat, self.cfg.lon)


def _number(name: str, label: str, fmt: str, lo: float, hi: float, step: float, value: float) -> NumberMember:
    return NumberMember(name, label, format=fmt, min=lo, max=hi, step=step, membervalue=value)


def _switches(names: dict[str, str], on: str | None) -> list[SwitchMember]:
    return [SwitchMember(k, v, membervalue="On" if k == on else "Off") for k, v in names.items()]


def _connection(connected: bool) -> SwitchVector:
    return SwitchVector("CONNECTION", "Connection", "Main Control", "rw", "OneOfMany", "Ok" if connected else "Idle",
                        _switches({"CONNECT": "Connect", "DISCONNECT": "Disconnect"}, "CONNECT" if connected else "DISCONNECT"))


def _driver_info(name: str, interface: int) -> TextVector:
    return TextVector("DRIVER_INFO", "Driver Info", "General Info", "ro", "Idle", [
        TextMember("DRIVER_NAME", "Name", name), TextMember("DRIVER_EXEC", "Exec", DRIVER_EXEC),
        TextMember("DRIVER_VERSION", "Version", VERSION), TextMember("DRIVER_INTERFACE", "Interface", str(interface)),
    ])


def _on(vector: SwitchVector) -> str | None:
    for name, member in vector.data.items():
        if member.membervalue == "On":
            return str(name)
    return None


def _set_one(vector: SwitchVector, element: str) -> None:
    for name in vector.data:
        vector[name] = "On" if name == element else "Off"


def build_world(cfg: SimConfig) -> Observatory:
    start = parse_instant(cfg.start) if cfg.start else None
    clock = SimClock(start, cfg.time_factor)
    known = {f.name: f for f in DEFAULT_FILTERS}
    filters = tuple(known.get(n, FilterSpec(n, 0.5)) for n in cfg.filters)
    model = SimModel(cfg.preset, seed=cfg.seed, width=cfg.width, height=cfg.height, filters=filters,
                     cosmic_rays=cfg.cosmic_rays)
    spec = model.spec
    cooler = Cooler(cfg.ambient_c, spec.cooler_max_delta_c, spec.cooler_rate_c_per_min)
    world = Observatory(cfg=cfg, clock=clock, model=model, cooler=cooler, filter_names=list(cfg.filters),
                        light_leak=cfg.light_leak, cloud_cover=cfg.cloud_cover, faults=set(cfg.faults))
    cooler.weak = "FAULT_COOLER_WEAK" in world.faults
    # parked: pointing at the celestial pole
    world.alt_deg, world.az_deg = abs(cfg.lat), 0.0 if cfg.lat >= 0 else 180.0
    world.update_pointing(clock.now())
    return world


class SimDriver(IPyDriver):
    """All devices of the simulated observatory in one driver process."""

    def __init__(self, world: Observatory) -> None:
        self.world = world
        cfg, spec = world.cfg, world.model.spec
        self.cam_name, self.wheel_name = cfg.camera_name, cfg.wheel_name
        self.panel_name, self.mount_name, self.clock_name = cfg.panel_name, cfg.mount_name, cfg.clock_name
        self.exposure_task: asyncio.Task[None] | None = None
        self.gain = float(spec.gain_default)
        self.offset = float(spec.offset_default)

        cam_props = [
            _connection(cfg.connected),
            _driver_info("obsagent simulated camera", INTERFACE["ccd"]),
            NumberVector("CCD_EXPOSURE", "Expose", "Main Control", "rw", "Idle", [
                _number("CCD_EXPOSURE_VALUE", "Duration (s)", "%.4f", spec.min_exposure_s, spec.max_exposure_s, 0.001, 1.0)]),
            SwitchVector("CCD_ABORT_EXPOSURE", "Abort", "Main Control", "rw", "AtMostOne", "Idle",
                         _switches({"ABORT": "Abort"}, None)),
            SwitchVector("CCD_FRAME_TYPE", "Frame Type", "Image Settings", "rw", "OneOfMany", "Ok",
                         _switches({"FRAME_LIGHT": "Light", "FRAME_BIAS": "Bias", "FRAME_DARK": "Dark",
                                    "FRAME_FLAT": "Flat"}, "FRAME_LIGHT")),
            NumberVector("CCD_BINNING", "Binning", "Image Settings", "rw", "Ok", [
                _number("HOR_BIN", "X", "%2.0f", 1, 4, 1, 1), _number("VER_BIN", "Y", "%2.0f", 1, 4, 1, 1)]),
            NumberVector("CCD_FRAME", "Frame", "Image Settings", "rw", "Ok", [
                _number("X", "Left", "%4.0f", 0, spec.width - 1, 1, 0),
                _number("Y", "Top", "%4.0f", 0, spec.height - 1, 1, 0),
                _number("WIDTH", "Width", "%4.0f", 1, spec.width, 1, spec.width),
                _number("HEIGHT", "Height", "%4.0f", 1, spec.height, 1, spec.height)]),
            NumberVector("CCD_INFO", "CCD Information", "Image Info", "ro", "Ok", [
                _number("CCD_MAX_X", "Max. Width", "%4.0f", 1, 16000, 1, spec.width),
                _number("CCD_MAX_Y", "Max. Height", "%4.0f", 1, 16000, 1, spec.height),
                _number("CCD_PIXEL_SIZE", "Pixel size (um)", "%5.2f", 1, 40, 0, spec.pixel_size_um),
                _number("CCD_PIXEL_SIZE_X", "Pixel size X", "%5.2f", 1, 40, 0, spec.pixel_size_um),
                _number("CCD_PIXEL_SIZE_Y", "Pixel size Y", "%5.2f", 1, 40, 0, spec.pixel_size_um),
                _number("CCD_BITSPERPIXEL", "Bits per pixel", "%3.0f", 8, 64, 0, 16)]),
            NumberVector("CCD_TEMPERATURE", "Temperature", "Main Control", "rw", "Idle", [
                _number("CCD_TEMPERATURE_VALUE", "Temperature (C)", "%5.2f", -50, 50, 0, round(world.cooler.temperature_c, 2))]),
            SwitchVector("CCD_COOLER", "Cooler", "Main Control", "rw", "OneOfMany", "Idle",
                         _switches({"COOLER_ON": "On", "COOLER_OFF": "Off"}, "COOLER_OFF")),
            NumberVector("CCD_COOLER_POWER", "Cooler power", "Main Control", "ro", "Idle", [
                _number("CCD_COOLER_VALUE", "Power (%)", "%3.0f", 0, 100, 1, 0)]),
            NumberVector("CCD_OFFSET", "Offset", "Main Control", "rw", "Ok", [
                _number("OFFSET", "Offset", "%4.0f", 0, spec.offset_max, 1, self.offset)]),
            SwitchVector("CCD_CAPTURE_FORMAT", "Readout mode", "Image Settings", "rw", "OneOfMany", "Ok",
                         _switches({m.name: m.label for m in spec.readout_modes}, spec.readout_modes[0].name)),
            SwitchVector("UPLOAD_MODE", "Upload", "Options", "rw", "OneOfMany", "Ok",
                         _switches({"UPLOAD_CLIENT": "Client", "UPLOAD_LOCAL": "Local", "UPLOAD_BOTH": "Both"},
                                   "UPLOAD_CLIENT")),
            BLOBVector("CCD1", "Image Data", "Image Info", "ro", "Idle", [BLOBMember("CCD1", "Image", blobformat=".fits")]),
            SwitchVector("SIM_FAULTS", "Inject faults", "Simulation", "rw", "AnyOfMany", "Ok",
                         [SwitchMember(k, v, "On" if k in world.faults else "Off") for k, v in CAMERA_FAULTS.items()]),
        ]
        if spec.gain_max > 0:
            cam_props.append(NumberVector("CCD_GAIN", "Gain", "Main Control", "rw", "Ok", [
                _number("GAIN", "Gain", "%4.0f", 0, spec.gain_max, 1, self.gain)]))
        if spec.cfa:
            cam_props.append(TextVector("CCD_CFA", "Bayer Info", "Image Info", "ro", "Ok", [
                TextMember("CFA_OFFSET_X", "X Offset", "0"), TextMember("CFA_OFFSET_Y", "Y Offset", "0"),
                TextMember("CFA_TYPE", "Filter", spec.cfa)]))

        n = len(world.filter_names)
        wheel_props = [
            _connection(cfg.connected),
            _driver_info("obsagent simulated filter wheel", INTERFACE["filter"]),
            NumberVector("FILTER_SLOT", "Filter Slot", "Filter Wheel", "rw", "Ok", [
                _number("FILTER_SLOT_VALUE", "Filter", "%3.0f", 1, n, 1, world.slot)]),
            TextVector("FILTER_NAME", "Filter", "Filter Wheel", "rw", "Ok", [
                TextMember(f"FILTER_SLOT_NAME_{i + 1}", f"Filter #{i + 1}", name) for i, name in enumerate(world.filter_names)]),
        ]
        panel_props = [
            _connection(cfg.connected),
            _driver_info("obsagent simulated flip-flat", INTERFACE["dustcap"] | INTERFACE["lightbox"]),
            SwitchVector("CAP_PARK", "Dust Cap", "Main Control", "rw", "OneOfMany", "Ok",
                         _switches({"PARK": "Park", "UNPARK": "Unpark"}, "PARK")),
            SwitchVector("FLAT_LIGHT_CONTROL", "Flat Light", "Main Control", "rw", "OneOfMany", "Ok",
                         _switches({"FLAT_LIGHT_ON": "On", "FLAT_LIGHT_OFF": "Off"}, "FLAT_LIGHT_OFF")),
            NumberVector("FLAT_LIGHT_INTENSITY", "Brightness", "Main Control", "rw", "Ok", [
                _number("FLAT_LIGHT_INTENSITY_VALUE", "Value", "%3.0f", 0, world.model.optics.panel_max_brightness, 1, 0)]),
            SwitchVector("SIM_FAULTS", "Inject faults", "Simulation", "rw", "AnyOfMany", "Ok",
                         [SwitchMember(k, v, "On" if k in world.faults else "Off") for k, v in PANEL_FAULTS.items()]),
            NumberVector("SIM_LIGHT_LEAK", "Light leak", "Simulation", "rw", "Ok", [
                _number("LEAK_FRACTION", "Fraction of sky", "%.6f", 0, 1, 0, world.light_leak)]),
        ]
        mount_props = [
            _connection(cfg.connected),
            _driver_info("obsagent simulated mount", INTERFACE["telescope"]),
            SwitchVector("TELESCOPE_PARK", "Parking", "Main Control", "rw", "OneOfMany", "Ok",
                         _switches({"PARK": "Park(ed)", "UNPARK": "UnPark(ed)"}, "PARK")),
            SwitchVector("TELESCOPE_TRACK_STATE", "Tracking", "Main Control", "rw", "OneOfMany", "Ok",
                         _switches({"TRACK_ON": "On", "TRACK_OFF": "Off"}, "TRACK_OFF")),
            SwitchVector("ON_COORD_SET", "On Set", "Main Control", "rw", "OneOfMany", "Ok",
                         _switches({"TRACK": "Track", "SLEW": "Slew", "SYNC": "Sync"}, "TRACK")),
            NumberVector("EQUATORIAL_EOD_COORD", "Eq. Coordinates", "Main Control", "rw", "Ok", [
                _number("RA", "RA (hh:mm:ss)", "%010.6m", 0, 24, 0, world.ra_deg / 15.0),
                _number("DEC", "DEC (dd:mm:ss)", "%010.6m", -90, 90, 0, world.dec_deg)]),
            NumberVector("HORIZONTAL_COORD", "Horizontal Coord", "Main Control", "rw", "Ok", [
                _number("AZ", "Az D:M:S", "%010.6m", 0, 360, 0, world.az_deg),
                _number("ALT", "Alt D:M:S", "%010.6m", -90, 90, 0, world.alt_deg)]),
            NumberVector("GEOGRAPHIC_COORD", "Location", "Site Management", "ro", "Ok", [
                _number("LAT", "Lat (dd:mm:ss)", "%010.6m", -90, 90, 0, cfg.lat),
                _number("LONG", "Lon (dd:mm:ss)", "%010.6m", 0, 360, 0, cfg.lon % 360.0),
                _number("ELEV", "Elevation (m)", "%g", -200, 10000, 0, cfg.elevation)]),
            TextVector("TIME_UTC", "UTC", "Site Management", "ro", "Ok", [
                TextMember("UTC", "UTC Time", _iso(world.clock.now())), TextMember("OFFSET", "UTC Offset", "0.00")]),
        ]
        sun_alt, sun_az = world.sun()
        clock_props = [
            _driver_info("obsagent simulated clock", 0),
            TextVector("SIM_CLOCK", "Simulated time", "Main Control", "ro", "Ok", [
                TextMember("UTC", "UTC", _iso(world.clock.now())),
                TextMember("TIME_FACTOR", "Time factor", f"{world.clock.factor:g}"),
                TextMember("BASE_FACTOR", "Base time factor", f"{world.clock.base_factor:g}"),
                TextMember("FAST_UNTIL", "Fast until", "")]),
            NumberVector("SIM_TIME_FACTOR", "Time factor", "Main Control", "rw", "Ok", [
                _number("TIME_FACTOR", "Sim s per wall s", "%g", 0.001, 100000, 0, world.clock.factor)]),
            NumberVector("SIM_FAST_FORWARD", "Fast forward", "Main Control", "rw", "Ok", [
                _number("UNTIL", "Until (unix s, 0 = stop)", "%.0f", 0, 1e11, 0, 0),
                _number("FACTOR", "Sim s per wall s", "%g", 1, 1000000, 0, world.clock.factor)]),
            NumberVector("SIM_SUN", "Sun", "Main Control", "ro", "Ok", [
                _number("SUN_ALT", "Altitude (deg)", "%.3f", -90, 90, 0, round(sun_alt, 3)),
                _number("SUN_AZ", "Azimuth (deg)", "%.3f", 0, 360, 0, round(sun_az, 3))]),
            NumberVector("SIM_SKY", "Sky", "Main Control", "rw", "Ok", [
                _number("CLOUD_COVER", "Cloud cover (0-1)", "%.2f", 0, 1, 0, world.cloud_cover)]),
            NumberVector("GEOGRAPHIC_COORD", "Location", "Site Management", "ro", "Ok", [
                _number("LAT", "Lat (dd:mm:ss)", "%010.6m", -90, 90, 0, cfg.lat),
                _number("LONG", "Lon (dd:mm:ss)", "%010.6m", 0, 360, 0, cfg.lon % 360.0),
                _number("ELEV", "Elevation (m)", "%g", -200, 10000, 0, cfg.elevation)]),
        ]
        super().__init__(
            Device(self.cam_name, cam_props), Device(self.wheel_name, wheel_props), Device(self.panel_name, panel_props),
            Device(self.mount_name, mount_props), Device(self.clock_name, clock_props),
        )
        self._wheel_task: asyncio.Task[None] | None = None
        self._cap_task: asyncio.Task[None] | None = None
        self._slew_task: asyncio.Task[None] | None = None
        self._temp_busy = False
        self._send_lock = asyncio.Lock()

    async def send(self, xmldata: ET.Element) -> None:
        """Write one whole XML message to stdout, then the next.

        indipydriver's own writer yields between BLOB chunks (another message can land inside the
        BLOB) and writes through a buffered stdout on a socket its reader made non-blocking. Here
        each message is written completely with os.write, waiting while the socket is full. BLOB
        base64 is broken into 72-character lines: indiserver 1.9.9 intermittently stops forwarding
        a driver's output after a BLOB sent as one very long line.
        """
        if self.stop:
            return
        if getattr(xmldata, "tag", None) == "setBLOBVector":
            for one in xmldata.iter("oneBLOB"):
                text = one.text or ""
                one.text = "\n".join(text[i : i + 72] for i in range(0, len(text), 72))
        data = ET.tostring(xmldata) + b"\n"
        async with self._send_lock:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(1, view):]
                except BlockingIOError:
                    await asyncio.sleep(0.002)

    # ------------------------------------------------------------------ helpers
    def vec(self, device: str, name: str) -> object:
        return self[device][name]

    def connected(self, device: str) -> bool:
        return _on(self[device]["CONNECTION"]) == "CONNECT"

    async def refuse(self, vector: object, why: str) -> None:
        await vector.send_setVector(message=why, state="Alert")  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ events
    async def rxevent(self, event: object) -> None:
        try:
            await self._dispatch(event)
        except Exception:  # a bad request must never kill the driver
            log.exception("error handling %s", getattr(event, "vectorname", event))

    async def _dispatch(self, event: object) -> None:
        devicename = getattr(event, "devicename", None)
        vectorname = str(getattr(event, "vectorname", ""))
        vector = getattr(event, "vector", None)
        if devicename is None or vector is None or not hasattr(event, "items"):
            return
        values: dict[str, str] = dict(event.items())
        if vectorname == "CONNECTION":
            on = "CONNECT" if values.get("CONNECT") == "On" or values.get("DISCONNECT") == "Off" else "DISCONNECT"
            _set_one(vector, on)
            await vector.send_setVector(state="Ok" if on == "CONNECT" else "Idle")
            return
        if devicename == self.clock_name:
            await self._clock_event(vectorname, vector, values)
            return
        if vectorname in ("SIM_FAULTS", "SIM_LIGHT_LEAK"):
            await self._sim_event(vectorname, vector, values)
            return
        if not self.connected(devicename):
            await self.refuse(vector, f"{devicename} is not connected")
            return
        if devicename == self.cam_name:
            await self._camera_event(vectorname, vector, values)
        elif devicename == self.wheel_name:
            await self._wheel_event(vectorname, vector, values)
        elif devicename == self.panel_name:
            await self._panel_event(vectorname, vector, values)
        elif devicename == self.mount_name:
            await self._mount_event(vectorname, vector, values)

    async def _sim_event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w = self.world
        if name == "SIM_FAULTS":
            for element, value in values.items():
                vector[element] = value  # type: ignore[index]
                if value == "On":
                    w.faults.add(element)
                else:
                    w.faults.discard(element)
            w.cooler.weak = "FAULT_COOLER_WEAK" in w.faults
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "SIM_LIGHT_LEAK":
            w.light_leak = _f(values["LEAK_FRACTION"])
            vector["LEAK_FRACTION"] = w.light_leak  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]

    async def _clock_event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w = self.world
        if name == "SIM_TIME_FACTOR":
            factor = _f(values["TIME_FACTOR"])
            if factor <= 0:
                await self.refuse(vector, "time factor must be > 0")
                return
            w.clock.set_factor(factor)
            vector["TIME_FACTOR"] = factor  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
            await self.publish_clock()
        elif name == "SIM_FAST_FORWARD":
            until_unix = _f(values.get("UNTIL", "0"))
            factor = _f(values.get("FACTOR", str(w.clock.base_factor)))
            if factor <= 0:
                await self.refuse(vector, "fast-forward factor must be > 0")
                return
            until = datetime.fromtimestamp(until_unix, UTC) if until_unix > 0 else None
            w.clock.fast_forward(until, factor)
            vector["UNTIL"], vector["FACTOR"] = until_unix, factor  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
            await self.publish_clock()
        elif name == "SIM_SKY":
            w.cloud_cover = min(1.0, max(0.0, _f(values["CLOUD_COVER"])))
            vector["CLOUD_COVER"] = w.cloud_cover  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]

    # ---- camera
    async def _camera_event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w, spec = self.world, self.world.model.spec
        v: object = vector
        if name == "CCD_EXPOSURE":
            duration = _f(values["CCD_EXPOSURE_VALUE"])
            if self.exposure_task is not None and not self.exposure_task.done():
                await self.refuse(v, "an exposure is already in progress")
                return
            if not spec.min_exposure_s <= duration <= spec.max_exposure_s:
                await self.refuse(v, f"exposure {duration} s outside {spec.min_exposure_s}..{spec.max_exposure_s} s")
                return
            self.exposure_task = asyncio.create_task(self._expose_guarded(duration))
        elif name == "CCD_ABORT_EXPOSURE":
            if self.exposure_task is not None and not self.exposure_task.done():
                self.exposure_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.exposure_task
            exp = self[self.cam_name]["CCD_EXPOSURE"]
            exp["CCD_EXPOSURE_VALUE"] = 0
            await exp.send_setVector(state="Idle", message="exposure aborted")
            _set_one(v, "")
            await v.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name in ("CCD_FRAME_TYPE", "CCD_CAPTURE_FORMAT", "UPLOAD_MODE", "CCD_COOLER"):
            chosen = next((k for k, val in values.items() if val == "On"), None)
            if chosen is None:
                await v.send_setVector(state="Ok")  # type: ignore[attr-defined]
                return
            if name == "UPLOAD_MODE" and chosen != "UPLOAD_CLIENT":
                await self.refuse(v, "the simulator only uploads to the client")
                return
            _set_one(v, chosen)
            if name == "CCD_COOLER":
                w.cooler.on = chosen == "COOLER_ON"
                if not w.cooler.on:
                    self._temp_busy = False
                await v.send_setVector(state="Ok" if w.cooler.on else "Idle")  # type: ignore[attr-defined]
                return
            await v.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "CCD_TEMPERATURE":
            target = _f(values["CCD_TEMPERATURE_VALUE"])
            w.cooler.set_point_c = target
            w.cooler.on = True
            cooler = self[self.cam_name]["CCD_COOLER"]
            _set_one(cooler, "COOLER_ON")
            await cooler.send_setVector(state="Ok")
            self._temp_busy = True
            await v.send_setVector(state="Busy", message=f"cooling to {target:g} C")  # type: ignore[attr-defined]
        elif name in ("CCD_GAIN", "CCD_OFFSET", "CCD_BINNING", "CCD_FRAME"):
            for element, text in values.items():
                value = _f(text)
                member = v.data[element]  # type: ignore[attr-defined]
                lo, hi = float(member.min), float(member.max)
                if not lo <= value <= hi:
                    await self.refuse(v, f"{element} {value:g} outside {lo:g}..{hi:g}")
                    return
            for element, text in values.items():
                v[element] = _f(text)  # type: ignore[index]
            if name == "CCD_GAIN":
                self.gain = _f(values["GAIN"])
            elif name == "CCD_OFFSET":
                self.offset = _f(values["OFFSET"])
            await v.send_setVector(state="Ok")  # type: ignore[attr-defined]

    def _numbers(self, device: str, name: str) -> dict[str, float]:
        return {k: float(m.getfloatvalue()) for k, m in self[device][name].data.items()}

    async def _expose_guarded(self, duration: float) -> None:
        try:
            await self._expose(duration)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("exposure failed")
            exp = self[self.cam_name]["CCD_EXPOSURE"]
            await exp.send_setVector(state="Alert", message=f"exposure failed: {exc}")

    async def _expose(self, duration: float) -> None:
        w = self.world
        cam = self[self.cam_name]
        exp = cam["CCD_EXPOSURE"]
        start = w.clock.now()
        factor = w.clock.factor
        wall_total = duration / factor
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        exp["CCD_EXPOSURE_VALUE"] = duration
        log.info("exposure %.4g s started (wall %.3g s)", duration, wall_total)
        await exp.send_setVector(state="Busy")
        exited_at = wall_total / 2 if "FAULT_DRIVER_EXIT" in w.faults else None
        while True:
            elapsed = loop.time() - t0
            if exited_at is not None and elapsed >= exited_at:
                log.error("injected fault: driver exits mid-exposure")
                sys.stdout.flush()
                os._exit(1)
            remaining = wall_total - elapsed
            if remaining <= 0:
                break
            await asyncio.sleep(min(0.5, remaining))
            exp["CCD_EXPOSURE_VALUE"] = round(max(0.0, remaining - 0.5) * factor, 3)
            await exp.send_setVector(state="Busy")
        if "FAULT_EXPOSURE_HANG" in w.faults:
            return  # stays Busy forever, no image
        frame_type = FRAME_TYPES[_on(cam["CCD_FRAME_TYPE"]) or "FRAME_LIGHT"]
        binning = int(self._numbers(self.cam_name, "CCD_BINNING")["HOR_BIN"])
        fr = self._numbers(self.cam_name, "CCD_FRAME")
        mode = _on(cam["CCD_CAPTURE_FORMAT"])
        mid = start + (w.clock.now() - start) / 2
        sun_alt, _ = w.sun(mid)
        filter_name = w.filter_names[w.slot - 1]
        temperature = w.cooler.temperature_c
        w.update_pointing(mid)
        kwargs = dict(
            frame_type=frame_type, exposure=duration, temperature=temperature, gain=self.gain, offset=self.offset,
            binning=binning, filter=filter_name, panel_brightness=w.brightness if w.light_on else 0.0,
            cap_closed=w.cap_closed, sun_altitude=sun_alt, readout_mode=mode, light_leak=w.light_leak,
            cloud_cover=w.cloud_cover, field_id=w.field_id(), tracking=w.tracking and not w.parked, dec_deg=w.dec_deg,
            roi=(int(fr["X"]), int(fr["Y"]), int(fr["WIDTH"]), int(fr["HEIGHT"])),
        )
        data = await loop.run_in_executor(None, lambda: w.model.render(**kwargs))  # type: ignore[arg-type]
        header = self._header(frame_type, duration, start, temperature, binning, filter_name, mode, sun_alt, fr)
        blob = await loop.run_in_executor(None, _fits_bytes, data, header)
        if "FAULT_BLOB_TRUNCATED" in w.faults:
            blob = blob[: len(blob) // 3]
        elif "FAULT_BLOB_CORRUPT" in w.faults:
            blob = np.random.default_rng(len(blob)).integers(0, 256, len(blob), dtype=np.uint8).tobytes()
        ccd1 = cam["CCD1"]
        ccd1["CCD1"] = blob
        ccd1.set_blobsize("CCD1", len(blob))
        await ccd1.send_setVectorMembers(state="Ok", members=["CCD1"])
        log.info("exposure %.4g s done: %s %s, %d bytes sent", duration, frame_type, data.shape, len(blob))
        exp["CCD_EXPOSURE_VALUE"] = 0
        await exp.send_setVector(state="Ok")

    def _header(self, frame_type: str, duration: float, start: datetime, temperature: float, binning: int,
                filter_name: str, mode: str | None, sun_alt: float, fr: dict[str, float]) -> list[tuple[str, object, str]]:
        w = self.world
        spec = w.model.spec
        mode_label = w.model.readout_mode(mode).label
        cards: list[tuple[str, object, str]] = [
            ("IMAGETYP", IMAGETYP[frame_type], "type of frame"),
            ("EXPTIME", duration, "exposure [s]"),
            ("EXPOSURE", duration, "exposure [s]"),
            ("DATE-OBS", start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "UTC start of exposure (simulated time)"),
            ("CCD-TEMP", round(temperature, 2), "sensor temperature [C]"),
            ("XBINNING", binning, "binning"), ("YBINNING", binning, "binning"),
            ("XPIXSZ", spec.pixel_size_um * binning, "pixel size [um] incl. binning"),
            ("YPIXSZ", spec.pixel_size_um * binning, "pixel size [um] incl. binning"),
            ("XORGSUBF", int(fr["X"]), "subframe origin x"), ("YORGSUBF", int(fr["Y"]), "subframe origin y"),
            ("OFFSET", int(self.offset), "sensor offset setting"),
            ("FILTER", filter_name, "filter in the light path"),
            ("INSTRUME", self.cam_name, "camera"),
            ("TELESCOP", self.mount_name, "mount"),
            ("READOUTM", mode_label, "readout mode"),
            ("ADCBITS", spec.bit_depth, "native ADC bits (data scaled to 16 bit)"),
            ("FOCALLEN", w.model.optics.focal_length_mm, "focal length [mm]"),
            ("SITELAT", w.cfg.lat, "site latitude [deg]"), ("SITELONG", w.cfg.lon, "site longitude [deg]"),
            ("SUNALT", round(sun_alt, 3), "Sun altitude mid-exposure [deg] (simulator)"),
            ("SIMSEED", w.cfg.seed, "simulator seed"), ("SIMPRSET", w.cfg.preset, "simulator preset"),
        ]
        if spec.gain_max > 0:
            cards.append(("GAIN", int(self.gain), "sensor gain setting"))
        if w.cooler.on:
            cards.append(("SET-TEMP", w.cooler.set_point_c, "cooler set-point [C]"))
        if spec.cfa:
            cards += [("BAYERPAT", spec.cfa, "CFA pattern"), ("XBAYROFF", 0, "CFA x offset"), ("YBAYROFF", 0, "CFA y offset")]
        return cards

    # ---- wheel
    async def _wheel_event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w = self.world
        if name == "FILTER_SLOT":
            target = int(round(_f(values["FILTER_SLOT_VALUE"])))
            if not 1 <= target <= len(w.filter_names):
                await self.refuse(vector, f"slot {target} outside 1..{len(w.filter_names)}")
                return
            if self._wheel_task is not None and not self._wheel_task.done():
                self._wheel_task.cancel()
            self._wheel_task = asyncio.create_task(self._move_wheel(target))
        elif name == "FILTER_NAME":
            for element, text in values.items():
                vector[element] = text  # type: ignore[index]
                w.filter_names[int(element.rsplit("_", 1)[1]) - 1] = text
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]

    async def _move_wheel(self, target: int) -> None:
        w = self.world
        vec = self[self.wheel_name]["FILTER_SLOT"]
        n = len(w.filter_names)
        steps = min((target - w.slot) % n, (w.slot - target) % n)
        await vec.send_setVector(state="Busy")
        await asyncio.sleep(w.clock.wall_seconds(steps * WHEEL_SLOT_S))
        w.slot = target
        vec["FILTER_SLOT_VALUE"] = target
        await vec.send_setVector(state="Ok")

    # ---- flip-flat
    async def _panel_event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w = self.world
        if name == "CAP_PARK":
            chosen = next((k for k, val in values.items() if val == "On"), None)
            if chosen is None:
                return
            if self._cap_task is not None and not self._cap_task.done():
                await self.refuse(vector, "the cap is moving")
                return
            self._cap_task = asyncio.create_task(self._move_cap(chosen == "PARK"))
        elif name == "FLAT_LIGHT_CONTROL":
            chosen = next((k for k, val in values.items() if val == "On"), None)
            if chosen is not None:
                _set_one(vector, chosen)
                w.light_on = chosen == "FLAT_LIGHT_ON"
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "FLAT_LIGHT_INTENSITY":
            value = _f(values["FLAT_LIGHT_INTENSITY_VALUE"])
            hi = w.model.optics.panel_max_brightness
            if not 0 <= value <= hi:
                await self.refuse(vector, f"brightness {value:g} outside 0..{hi}")
                return
            w.brightness = value
            vector["FLAT_LIGHT_INTENSITY_VALUE"] = value  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]

    async def _move_cap(self, close: bool) -> None:
        w = self.world
        vec = self[self.panel_name]["CAP_PARK"]
        await vec.send_setVector(state="Busy", message="closing cap" if close else "opening cap")
        await asyncio.sleep(w.clock.wall_seconds(CAP_MOVE_S))
        if "FAULT_CAP_JAM" in w.faults:
            _set_one(vec, "PARK" if w.cap_closed else "UNPARK")
            await vec.send_setVector(state="Alert", message="cap jammed: motor stalled")
            return
        w.cap_closed = close
        _set_one(vec, "PARK" if close else "UNPARK")
        await vec.send_setVector(state="Ok", message="cap closed" if close else "cap open")

    # ---- mount
    async def _mount_event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w = self.world
        now = w.clock.now()
        if name == "TELESCOPE_PARK":
            chosen = next((k for k, val in values.items() if val == "On"), None)
            if chosen == "PARK":
                await self._start_slew(*astro.altaz_to_radec(abs(w.cfg.lat), 0.0 if w.cfg.lat >= 0 else 180.0, now,
                                                              w.cfg.lat, w.cfg.lon), park=True)
                return
            if chosen == "UNPARK":
                w.parked = False
                _set_one(vector, "UNPARK")
                await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "TELESCOPE_TRACK_STATE":
            chosen = next((k for k, val in values.items() if val == "On"), None)
            if chosen == "TRACK_ON" and w.parked:
                await self.refuse(vector, "mount is parked; unpark first")
                return
            if chosen is not None:
                w.update_pointing(now)
                w.tracking = chosen == "TRACK_ON"
                _set_one(vector, chosen)
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "ON_COORD_SET":
            chosen = next((k for k, val in values.items() if val == "On"), None)
            if chosen is not None:
                _set_one(vector, chosen)
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name in ("EQUATORIAL_EOD_COORD", "HORIZONTAL_COORD"):
            if w.parked:
                await self.refuse(vector, "mount is parked; unpark first")
                return
            if name == "EQUATORIAL_EOD_COORD":
                w.update_pointing(now)
                ra = _f(values.get("RA", str(w.ra_deg / 15.0))) * 15.0
                dec = _f(values.get("DEC", str(w.dec_deg)))
            else:
                w.update_pointing(now)
                alt = _f(values.get("ALT", str(w.alt_deg)))
                az = _f(values.get("AZ", str(w.az_deg)))
                ra, dec = astro.altaz_to_radec(alt, az, now, w.cfg.lat, w.cfg.lon)
            mode = _on(self[self.mount_name]["ON_COORD_SET"])
            if mode == "SYNC":
                w.ra_deg, w.dec_deg = ra, dec
                w.alt_deg, w.az_deg = astro.radec_to_altaz(ra, dec, now, w.cfg.lat, w.cfg.lon)
                await self.publish_mount(state="Ok")
                return
            await self._start_slew(ra, dec, park=False, track=(mode == "TRACK") if name == "EQUATORIAL_EOD_COORD" else w.tracking)

    async def _start_slew(self, ra: float, dec: float, park: bool, track: bool = False) -> None:
        if self._slew_task is not None and not self._slew_task.done():
            self._slew_task.cancel()
        self._slew_task = asyncio.create_task(self._slew(ra, dec, park, track))

    async def _slew(self, ra: float, dec: float, park: bool, track: bool) -> None:
        w = self.world
        now = w.clock.now()
        w.update_pointing(now)
        alt, az = astro.radec_to_altaz(ra, dec, now, w.cfg.lat, w.cfg.lon)
        distance = max(abs(alt - w.alt_deg), abs((az - w.az_deg + 180) % 360 - 180))
        park_vec = self[self.mount_name]["TELESCOPE_PARK"]
        if park:
            await park_vec.send_setVector(state="Busy", message="parking")
        await self.publish_mount(state="Busy")
        await asyncio.sleep(w.clock.wall_seconds(distance / SLEW_DEG_S))
        now = w.clock.now()
        w.ra_deg, w.dec_deg = ra, dec
        w.alt_deg, w.az_deg = astro.radec_to_altaz(ra, dec, now, w.cfg.lat, w.cfg.lon)
        track_vec = self[self.mount_name]["TELESCOPE_TRACK_STATE"]
        if park:
            w.parked, w.tracking = True, False
            w.alt_deg, w.az_deg = abs(w.cfg.lat), 0.0 if w.cfg.lat >= 0 else 180.0
            _set_one(park_vec, "PARK")
            await park_vec.send_setVector(state="Ok", message="parked")
        else:
            w.tracking = track or w.tracking
        _set_one(track_vec, "TRACK_ON" if w.tracking else "TRACK_OFF")
        await track_vec.send_setVector(state="Ok")
        await self.publish_mount(state="Ok")

    async def publish_mount(self, state: str | None = None) -> None:
        w = self.world
        dev = self[self.mount_name]
        eq, hz = dev["EQUATORIAL_EOD_COORD"], dev["HORIZONTAL_COORD"]
        eq["RA"], eq["DEC"] = (w.ra_deg % 360.0) / 15.0, w.dec_deg
        hz["AZ"], hz["ALT"] = w.az_deg, w.alt_deg
        await eq.send_setVector(state=state)
        await hz.send_setVector(state=state)
        utc = dev["TIME_UTC"]
        utc["UTC"] = _iso(w.clock.now())
        await utc.send_setVector()

    async def publish_clock(self) -> None:
        w = self.world
        dev = self[self.clock_name]
        clock = dev["SIM_CLOCK"]
        clock["UTC"] = _iso(w.clock.now())
        clock["TIME_FACTOR"] = f"{w.clock.factor:g}"
        clock["BASE_FACTOR"] = f"{w.clock.base_factor:g}"
        clock["FAST_UNTIL"] = _iso(w.clock.fast_until) if w.clock.fast_until else ""
        await clock.send_setVector(state="Ok")
        sun_alt, sun_az = w.sun()
        sun = dev["SIM_SUN"]
        sun["SUN_ALT"], sun["SUN_AZ"] = round(sun_alt, 3), round(sun_az, 3)
        await sun.send_setVector(state="Ok")

    # ------------------------------------------------------------------ hardware loop
    async def hardware(self) -> None:
        w = self.world
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, _warm_up, w.model)
        last_sim = w.clock.now()
        last_publish = -1e9
        last_temp = None
        while not self.stop:
            await asyncio.sleep(TICK_S)
            try:
                now = w.clock.now()
                w.cooler.advance((now - last_sim).total_seconds())
                last_sim = now
                cam = self[self.cam_name]
                temp = round(w.cooler.temperature_c, 2)
                if temp != last_temp or self._temp_busy:
                    tv = cam["CCD_TEMPERATURE"]
                    tv["CCD_TEMPERATURE_VALUE"] = temp
                    state = "Idle"
                    if self._temp_busy:
                        reached = abs(w.cooler.temperature_c - w.cooler.set_point_c) <= 0.2
                        state = "Ok" if reached else "Busy"
                        self._temp_busy = not reached
                    elif w.cooler.on:
                        state = "Ok"
                    await tv.send_setVector(state=state)
                    power = cam["CCD_COOLER_POWER"]
                    power["CCD_COOLER_VALUE"] = round(w.cooler.power_percent())
                    await power.send_setVector(state="Ok" if w.cooler.on else "Idle")
                    last_temp = temp
                if loop.time() - last_publish >= 1.0:
                    last_publish = loop.time()
                    await self.publish_clock()
                    if not (self._slew_task is not None and not self._slew_task.done()):
                        w.update_pointing(now)
                        await self.publish_mount()
            except Exception:
                log.exception("hardware loop")


def _warm_up(model: SimModel) -> None:
    """Draw the fixed maps before the first exposure so it is not slower than the rest."""
    truth = model.truth()
    _ = truth.dark_current_e_s, truth.amp_glow_e, truth.prnu
    for f in model.filters[:1]:
        model.flat_shape(f.name, "sky")
        model.flat_shape(f.name, "panel")


def _f(text: str) -> float:
    return float(IPyDriver.indi_number_to_float(text))


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _fits_bytes(data: np.ndarray, cards: list[tuple[str, object, str]]) -> bytes:
    from astropy.io import fits

    hdu = fits.PrimaryHDU(data=data)
    for key, value, comment in cards:
        hdu.header[key] = (value, comment)
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="indi_obsagent_sim: %(levelname)s %(message)s")
    try:
        cfg = load_config()
        world = build_world(cfg)
    except Exception as exc:  # indiserver shows stderr; say why we cannot start
        print(f"indi_obsagent_sim: cannot start: {exc}", file=sys.stderr)
        sys.exit(2)
    driver = SimDriver(world)
    asyncio.run(driver.asyncrun())


if __name__ == "__main__":
    main()
