"""The simulated camera: exposures rendered by the model from what the other devices set up, the
cooler, and the FITS header a real driver would write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from indipydriver import BLOBMember, BLOBVector, NumberVector, SwitchVector, TextMember, TextVector

from indi_sim.device import SimDevice
from indi_sim.faults import CAMERA_FAULTS, damaged_image, exit_mid_exposure, fault_switches
from indi_sim.vectors import (
    INTERFACE,
    connection,
    driver_info,
    number,
    refuse,
    set_one,
    switched_on,
    switches,
    to_float,
    turned_on,
)
from indi_sim.wire import encode_image
from indi_sim.world import Observatory

log = logging.getLogger("indi_obsagent_sim")

FRAME_TYPES = {"FRAME_LIGHT": "light", "FRAME_BIAS": "bias", "FRAME_DARK": "dark", "FRAME_FLAT": "flat"}
IMAGETYP = {"light": "Light Frame", "bias": "Bias Frame", "dark": "Dark Frame", "flat": "Flat Field"}
CAPTURE_FORMATS = {"RAW8": "Raw 8 bit", "RAW16": "Raw 16 bit"}  # the pixel format, as ZWO and Player One name it


class Camera(SimDevice):
    """CCD_* properties of a cooled camera; one exposure at a time, the image sent as a FITS BLOB.

    Readout modes are published as Player One does (indi-playerone/playerone_base.cpp): a
    SENSOR_MODE switch, elements MODE_0..n labelled with the mode's name; CCD_CAPTURE_FORMAT is
    the pixel format ("Raw 8 bit"/"Raw 16 bit"). What indiccd.cpp keeps in the config (transfer
    format, compression, upload mode, capture format, frame, binning) and the controls are saved
    between runs, and honoured: compressed (fpack `.fits.fz`), native (`.raw`), local upload (no
    BLOB), 8-bit pixels, a sub-frame.
    """

    SAVED = frozenset({"CCD_COMPRESSION", "CCD_TRANSFER_FORMAT", "UPLOAD_MODE", "CCD_CAPTURE_FORMAT", "CCD_FRAME",
                       "CCD_BINNING", "CCD_GAIN", "CCD_OFFSET", "SENSOR_MODE"})

    def __init__(self, driver: Any, world: Observatory, name: str) -> None:
        super().__init__(driver, world, name)
        spec = world.model.spec
        self.exposure_task: asyncio.Task[None] | None = None
        self.gain = float(spec.gain_default)
        self.offset = float(spec.offset_default)
        self._temp_busy = False  # a set-point was asked for and not reached yet
        self._last_temp: float | None = None

    def properties(self) -> list[Any]:
        world = self.world
        cfg, spec = world.cfg, world.model.spec
        cam_props = [
            connection(cfg.connected),
            driver_info("obsagent simulated camera", INTERFACE["ccd"]),
            NumberVector("CCD_EXPOSURE", "Expose", "Main Control", "rw", "Idle", [
                number("CCD_EXPOSURE_VALUE", "Duration (s)", "%.4f", spec.min_exposure_s, spec.max_exposure_s, 0.001, 1.0)]),
            SwitchVector("CCD_ABORT_EXPOSURE", "Abort", "Main Control", "rw", "AtMostOne", "Idle",
                         switches({"ABORT": "Abort"}, None)),
            SwitchVector("CCD_FRAME_TYPE", "Frame Type", "Image Settings", "rw", "OneOfMany", "Ok",
                         switches({"FRAME_LIGHT": "Light", "FRAME_BIAS": "Bias", "FRAME_DARK": "Dark",
                                    "FRAME_FLAT": "Flat"}, "FRAME_LIGHT")),
            NumberVector("CCD_BINNING", "Binning", "Image Settings", "rw", "Ok", [
                number("HOR_BIN", "X", "%2.0f", 1, 4, 1, 1), number("VER_BIN", "Y", "%2.0f", 1, 4, 1, 1)]),
            NumberVector("CCD_FRAME", "Frame", "Image Settings", "rw", "Ok", [
                number("X", "Left", "%4.0f", 0, spec.width - 1, 1, 0),
                number("Y", "Top", "%4.0f", 0, spec.height - 1, 1, 0),
                number("WIDTH", "Width", "%4.0f", 1, spec.width, 1, spec.width),
                number("HEIGHT", "Height", "%4.0f", 1, spec.height, 1, spec.height)]),
            NumberVector("CCD_INFO", "CCD Information", "Image Info", "ro", "Ok", [
                number("CCD_MAX_X", "Max. Width", "%4.0f", 1, 16000, 1, spec.width),
                number("CCD_MAX_Y", "Max. Height", "%4.0f", 1, 16000, 1, spec.height),
                number("CCD_PIXEL_SIZE", "Pixel size (um)", "%5.2f", 1, 40, 0, spec.pixel_size_um),
                number("CCD_PIXEL_SIZE_X", "Pixel size X", "%5.2f", 1, 40, 0, spec.pixel_size_um),
                number("CCD_PIXEL_SIZE_Y", "Pixel size Y", "%5.2f", 1, 40, 0, spec.pixel_size_um),
                number("CCD_BITSPERPIXEL", "Bits per pixel", "%3.0f", 8, 64, 0, 16)]),
            NumberVector("CCD_TEMPERATURE", "Temperature", "Main Control", "rw", "Idle", [
                number("CCD_TEMPERATURE_VALUE", "Temperature (C)", "%5.2f", -50, 50, 0, round(world.cooler.temperature_c, 2))]),
            SwitchVector("CCD_COOLER", "Cooler", "Main Control", "rw", "OneOfMany", "Idle",
                         switches({"COOLER_ON": "On", "COOLER_OFF": "Off"}, "COOLER_OFF")),
            NumberVector("CCD_COOLER_POWER", "Cooler power", "Main Control", "ro", "Idle", [
                number("CCD_COOLER_VALUE", "Power (%)", "%3.0f", 0, 100, 1, 0)]),
            NumberVector("CCD_OFFSET", "Offset", "Main Control", "rw", "Ok", [
                number("OFFSET", "Offset", "%4.0f", 0, spec.offset_max, 1, self.offset)]),
            SwitchVector("CCD_CAPTURE_FORMAT", "Format", "Image Settings", "rw", "OneOfMany", "Ok",
                         switches(CAPTURE_FORMATS, "RAW16")),
            SwitchVector("SENSOR_MODE", "Sensor Mode", "Controls", "rw", "OneOfMany", "Ok",
                         switches({f"MODE_{i}": m.label for i, m in enumerate(spec.readout_modes)}, "MODE_0")),
            SwitchVector("CCD_COMPRESSION", "Compression", "Options", "rw", "OneOfMany", "Ok",
                         switches({"INDI_ENABLED": "Enabled", "INDI_DISABLED": "Disabled"}, "INDI_DISABLED")),
            SwitchVector("CCD_TRANSFER_FORMAT", "Format", "Options", "rw", "OneOfMany", "Ok",
                         switches({"FORMAT_FITS": "FITS", "FORMAT_NATIVE": "Native"}, "FORMAT_FITS")),
            SwitchVector("UPLOAD_MODE", "Upload", "Options", "rw", "OneOfMany", "Ok",
                         switches({"UPLOAD_CLIENT": "Client", "UPLOAD_LOCAL": "Local", "UPLOAD_BOTH": "Both"},
                                   "UPLOAD_CLIENT")),
            BLOBVector("CCD1", "Image Data", "Image Info", "ro", "Idle", [BLOBMember("CCD1", "Image", blobformat=".fits")]),
            fault_switches(CAMERA_FAULTS, world.faults),
        ]
        if spec.gain_max > 0:
            cam_props.append(NumberVector("CCD_GAIN", "Gain", "Main Control", "rw", "Ok", [
                number("GAIN", "Gain", "%4.0f", 0, spec.gain_max, 1, self.gain)]))
        if spec.cfa:
            cam_props.append(TextVector("CCD_CFA", "Bayer Info", "Image Info", "ro", "Ok", [
                TextMember("CFA_OFFSET_X", "X Offset", "0"), TextMember("CFA_OFFSET_Y", "Y Offset", "0"),
                TextMember("CFA_TYPE", "Filter", spec.cfa)]))
        return cam_props

    async def event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w, spec = self.world, self.world.model.spec
        v: object = vector
        if name == "CCD_EXPOSURE":
            duration = to_float(values["CCD_EXPOSURE_VALUE"])
            if self.exposure_task is not None and not self.exposure_task.done():
                await refuse(v, "an exposure is already in progress")
                return
            if not spec.min_exposure_s <= duration <= spec.max_exposure_s:
                await refuse(v, f"exposure {duration} s outside {spec.min_exposure_s}..{spec.max_exposure_s} s")
                return
            self.exposure_task = asyncio.create_task(self._expose_guarded(duration))
        elif name == "CCD_ABORT_EXPOSURE":
            if self.exposure_task is not None and not self.exposure_task.done():
                self.exposure_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.exposure_task
            exp = self["CCD_EXPOSURE"]
            exp["CCD_EXPOSURE_VALUE"] = 0
            await exp.send_setVector(state="Idle", message="exposure aborted")
            set_one(v, "")
            await v.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name in ("CCD_FRAME_TYPE", "CCD_CAPTURE_FORMAT", "UPLOAD_MODE", "CCD_COOLER", "SENSOR_MODE",
                      "CCD_COMPRESSION", "CCD_TRANSFER_FORMAT"):
            chosen = turned_on(values)
            if chosen is None:
                await v.send_setVector(state="Ok")  # type: ignore[attr-defined]
                return
            set_one(v, chosen)
            if name == "CCD_CAPTURE_FORMAT":  # the driver's bits per pixel follow the format (setVideoFormat)
                info = self["CCD_INFO"]
                info["CCD_BITSPERPIXEL"] = 8 if chosen == "RAW8" else 16
                await info.send_setVector(state="Ok")
            if name == "CCD_COOLER":
                w.cooler.on = chosen == "COOLER_ON"
                if not w.cooler.on:
                    self._temp_busy = False
                await v.send_setVector(state="Ok" if w.cooler.on else "Idle")  # type: ignore[attr-defined]
                return
            await v.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "CCD_TEMPERATURE":
            target = to_float(values["CCD_TEMPERATURE_VALUE"])
            w.cooler.set_point_c = target
            w.cooler.on = True
            cooler = self["CCD_COOLER"]
            set_one(cooler, "COOLER_ON")
            await cooler.send_setVector(state="Ok")
            self._temp_busy = True
            await v.send_setVector(state="Busy", message=f"cooling to {target:g} C")  # type: ignore[attr-defined]
        elif name in ("CCD_GAIN", "CCD_OFFSET", "CCD_BINNING", "CCD_FRAME"):
            for element, text in values.items():
                value = to_float(text)
                member = v.data[element]  # type: ignore[attr-defined]
                lo, hi = float(member.min), float(member.max)
                if not lo <= value <= hi:
                    await refuse(v, f"{element} {value:g} outside {lo:g}..{hi:g}")
                    return
            for element, text in values.items():
                v[element] = to_float(text)  # type: ignore[index]
            if name == "CCD_GAIN":
                self.gain = to_float(values["GAIN"])
            elif name == "CCD_OFFSET":
                self.offset = to_float(values["OFFSET"])
            await v.send_setVector(state="Ok")  # type: ignore[attr-defined]

    async def publish_cooler(self) -> None:
        """Send temperature and cooler power when the temperature changed or a set-point is pending."""
        w = self.world
        temp = self.reading()
        if temp != self._last_temp or self._temp_busy:
            tv = self["CCD_TEMPERATURE"]
            tv["CCD_TEMPERATURE_VALUE"] = temp
            state = "Idle"
            if self._temp_busy:
                reached = abs(temp - w.cooler.set_point_c) <= 0.2
                state = "Ok" if reached else "Busy"
                self._temp_busy = not reached
            elif w.cooler.on:
                state = "Ok"
            await tv.send_setVector(state=state)
            power = self["CCD_COOLER_POWER"]
            power["CCD_COOLER_VALUE"] = round(w.cooler.power_percent())
            await power.send_setVector(state="Ok" if w.cooler.on else "Idle")
            self._last_temp = temp

    def reading(self) -> float:
        """The sensor temperature the driver reports: the true one, or with FAULT_TEMPERATURE_FROZEN
        the last value it published (a driver whose temperature query fails keeps the last good one)."""
        if "FAULT_TEMPERATURE_FROZEN" in self.world.faults and self._last_temp is not None:
            return self._last_temp
        return round(self.world.cooler.temperature_c, 2)

    def _numbers(self, name: str) -> dict[str, float]:
        return {k: float(m.getfloatvalue()) for k, m in self[name].data.items()}

    async def _expose_guarded(self, duration: float) -> None:
        try:
            await self._expose(duration)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("exposure failed")
            exp = self["CCD_EXPOSURE"]
            await exp.send_setVector(state="Alert", message=f"exposure failed: {exc}")

    async def _expose(self, duration: float) -> None:
        w = self.world
        cam = self.driver[self.name]
        exp = cam["CCD_EXPOSURE"]
        start = w.clock.now()
        end = start + timedelta(seconds=duration)
        wall_total = w.clock.wall_until(end)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        exp["CCD_EXPOSURE_VALUE"] = duration
        log.info("exposure %.4g s started (wall %.3g s)", duration, wall_total)
        await exp.send_setVector(state="Busy")
        exited_at = wall_total / 2 if "FAULT_DRIVER_EXIT" in w.faults else None
        # the exposure ends at a simulated instant: slow motion or a fast-forward that begins
        # mid-exposure changes its wall duration, never its simulated one
        while True:
            if exited_at is not None and loop.time() - t0 >= exited_at:
                exit_mid_exposure()
            if w.clock.now() >= end:
                break
            await asyncio.sleep(min(0.5, max(w.clock.wall_until(end), 0.0005)))
            exp["CCD_EXPOSURE_VALUE"] = round(max(0.0, (end - w.clock.now()).total_seconds()), 3)
            await exp.send_setVector(state="Busy")
        if "FAULT_EXPOSURE_HANG" in w.faults:
            return  # stays Busy forever, no image
        frame_type = FRAME_TYPES[switched_on(cam["CCD_FRAME_TYPE"]) or "FRAME_LIGHT"]
        binning = int(self._numbers("CCD_BINNING")["HOR_BIN"])
        fr = self._numbers("CCD_FRAME")
        mode = self.readout_mode()
        mid = start + (w.clock.now() - start) / 2
        sun_alt, _ = w.sun(mid)
        filter_name = w.filter_names[w.slot - 1]
        temperature = w.cooler.temperature_c
        w.update_pointing(mid)
        kwargs = dict(
            frame_type=frame_type, exposure=duration, temperature=temperature, gain=self.gain, offset=self.offset,
            binning=binning, filter=filter_name, panel_brightness=w.brightness if w.light_on else 0.0,
            cap_closed=w.cap_closed, sun_altitude=sun_alt, readout_mode=mode, light_leak=w.light_leak,
            cloud_cover=w.cloud_at(mid), field_id=w.field_id(), tracking=w.tracking and not w.parked, dec_deg=w.dec_deg,
            roi=(int(fr["X"]), int(fr["Y"]), int(fr["WIDTH"]), int(fr["HEIGHT"])),
        )
        data = await loop.run_in_executor(None, lambda: w.model.render(**kwargs))  # type: ignore[arg-type]
        header = self._header(frame_type, duration, start, self.reading(), binning, filter_name, mode, sun_alt, fr)
        header.append(("SIMCLOUD", round(float(kwargs["cloud_cover"]), 3), "cloud cover mid-exposure 0-1 (simulator)"))  # type: ignore[arg-type]
        if switched_on(cam["CCD_CAPTURE_FORMAT"]) == "RAW8":
            data = (data >> 8).astype(np.uint8)
        upload = switched_on(cam["UPLOAD_MODE"])
        if upload != "UPLOAD_CLIENT":
            log.info("exposure %.4g s done: saved locally (UPLOAD_MODE %s), no BLOB", duration, upload)
            await cam.send_device_message(f"Image saved to {self.name.replace(' ', '_')}_001.fits")
            if upload == "UPLOAD_LOCAL":
                exp["CCD_EXPOSURE_VALUE"] = 0
                await exp.send_setVector(state="Ok")
                return
        native = switched_on(cam["CCD_TRANSFER_FORMAT"]) == "FORMAT_NATIVE"
        compressed = switched_on(cam["CCD_COMPRESSION"]) == "INDI_ENABLED"
        encoded = await loop.run_in_executor(None, encode_image, data, header, native, compressed)
        once = "FAULT_BLOB_CORRUPT_ONCE" in w.faults
        blob = damaged_image(encoded.data, w.faults)
        if once:  # it switched itself off: show that to clients
            faults = cam["SIM_FAULTS"]
            faults["FAULT_BLOB_CORRUPT_ONCE"] = "Off"
            await faults.send_setVector(state="Ok")
        ccd1 = cam["CCD1"]
        ccd1["CCD1"] = blob
        ccd1.set_blobsize("CCD1", encoded.size)  # indiccd.cpp: the uncompressed size, whatever is sent
        ccd1.data["CCD1"].blobformat = encoded.fmt
        await ccd1.send_setVectorMembers(state="Ok", members=["CCD1"])
        log.info("exposure %.4g s done: %s %s, %d bytes sent as %s", duration, frame_type, data.shape, len(blob),
                 encoded.fmt)
        exp["CCD_EXPOSURE_VALUE"] = 0
        await exp.send_setVector(state="Ok")

    def readout_mode(self) -> str:
        """The model's readout mode that SENSOR_MODE selects (MODE_i is the i-th of the preset's modes)."""
        modes = self.world.model.spec.readout_modes
        on = switched_on(self["SENSOR_MODE"]) or "MODE_0"
        index = int(on.rsplit("_", 1)[1])
        return modes[index if 0 <= index < len(modes) else 0].name

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
            ("INSTRUME", self.name, "camera"),
            ("TELESCOP", w.cfg.mount_name, "mount"),
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
