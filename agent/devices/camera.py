"""Camera capability over the standard INDI CCD properties."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from astropy.io import fits

from agent.devices.client import ExposureAborted, IndiClient, PropertySnapshot, ServerLost
from agent.devices.frame import FRAME_TYPES, IMAGETYP, Frame, check_frame, decode_fits_blob
from agent.devices.hygiene import CaptureGeometry, Roi, prepare_capture, stale_settings
from agent.devices.readout import ReadoutModes
from agent.devices.temperature import TemperatureWatch
from agent.errors import CorruptFile, DeviceMissing, ExposureFailed, IndiError, IndiTimeout, PropertyMissing

log = logging.getLogger(__name__)

FRAME_RETRIES = 3
"""Corrupt, truncated or lost images in a row before `expose()` gives up."""

FaultHook = Callable[[str, Exception], None]
"""(cause, error) for every frame that had to be taken again; it may raise to stop retrying."""

INDI_FRAME_TYPE = {
    "light": "FRAME_LIGHT",
    "dark": "FRAME_DARK",
    "bias": "FRAME_BIAS",
    "flat": "FRAME_FLAT",
    "darkflat": "FRAME_DARK",  # INDI has no dark-flat type: a dark at the flat's exposure
}


@dataclass(frozen=True)
class CameraInfo:
    name: str
    width: int
    height: int
    pixel_size_um: float
    bit_depth: int
    has_cooler: bool
    has_gain: bool
    has_offset: bool
    readout_modes: tuple[str, ...]
    bayer_pattern: str | None


class Camera:
    """One INDI camera. Holds names, never PyIndi objects, so it survives a reconnect."""

    def __init__(self, client: IndiClient, name: str, download_timeout: float = 30.0) -> None:
        self.client = client
        self.name = name
        self.download_timeout = download_timeout
        self.time_factor = 1.0  # simulated seconds per wall second (indi_sim); 1 for real hardware
        self.set_point: float | None = None
        self.readout_mode: str | None = None
        self._abort = threading.Event()
        self.stop_event: StopSignal | None = None  # the night's abort (or bad weather): ends an exposure at once
        self.frame_retries = FRAME_RETRIES
        self.on_fault: FaultHook | None = None  # the night counts frame faults per cause
        self.roi: Roi | None = None  # None = the full sensor
        self.geometry: CaptureGeometry | None = None  # what frames must look like (set by prepare)
        self.modes = ReadoutModes(client, name)
        self.temperature_watch = TemperatureWatch()

    # ---- set-up ------------------------------------------------------------------------------
    def connect(self, timeout: float = 15.0) -> None:
        self.client.connect_device(self.name, timeout=timeout)
        # A driver defines its properties over a moment after connecting: wait for the ones we need.
        for prop in ("CCD_EXPOSURE", "CCD_FRAME_TYPE", "CCD_INFO", "CCD1"):
            self.client.wait_property(self.name, prop, timeout=timeout)
        self.client.enable_blob(self.name, "CCD1")
        self.prepare()

    def prepare(self, binning: int | None = None, roi: Roi | None = None) -> CaptureGeometry:
        """Capture hygiene (see `hygiene.py`): FITS, no compression, client upload, 16-bit raw,
        binning and the full frame (or `roi`), each verified. Call before every capture block."""
        if roi is not None:
            self.roi = roi
        if binning is None:
            binning = self.binning()[0] if self._has("CCD_BINNING") else 1
        self.geometry = prepare_capture(self.client, self.name, binning, self.roi)
        return self.geometry

    def _has(self, prop: str) -> bool:
        return self.client.has(self.name, prop)

    def _need(self, prop: str) -> PropertySnapshot:
        return self.client.get(self.name, prop)

    def _geometry_stale(self) -> list[str]:
        """CCD_FRAME or CCD_BINNING no longer what `prepare` set (another client, a driver restart)."""
        g = self.geometry
        if g is None:
            return []
        wrong = []
        if self._has("CCD_BINNING") and self.binning() != (g.binning, g.binning):
            wrong.append("CCD_BINNING")
        if self._has("CCD_FRAME"):
            frame = self._need("CCD_FRAME").values
            if (int(frame.get("WIDTH", 0)) // g.binning, int(frame.get("HEIGHT", 0)) // g.binning) != (g.width, g.height):
                wrong.append("CCD_FRAME")
        return wrong

    def info(self) -> CameraInfo:
        ccd = self._need("CCD_INFO").values
        return CameraInfo(
            name=self.name,
            width=int(ccd.get("CCD_MAX_X", 0)),
            height=int(ccd.get("CCD_MAX_Y", 0)),
            pixel_size_um=float(ccd.get("CCD_PIXEL_SIZE", 0.0)),
            bit_depth=int(ccd.get("CCD_BITSPERPIXEL", 16)),
            has_cooler=self.is_cooled(),
            has_gain=self._gain_target() is not None,
            has_offset=self._offset_target() is not None,
            readout_modes=self.readout_modes(),
            bayer_pattern=self.bayer_pattern(),
        )

    def _control(self, direct: tuple[str, str], spellings: tuple[str, ...]) -> tuple[str, str] | None:
        """Where the driver keeps a control: its own vector (CCD_GAIN.GAIN, as QHY, Touptek and
        indiccd's standard GainNP), else an element of CCD_CONTROLS under any of the drivers'
        spellings ("Gain"/"Offset" on ZWO ASI and Player One, CONTROL_GAIN/CONTROL_OFFSET on Atik)."""
        if self._has(direct[0]) and direct[1] in self._need(direct[0]).values:
            return direct
        if self._has("CCD_CONTROLS"):
            wanted = {s.lower() for s in spellings}
            for element in self._need("CCD_CONTROLS").values:
                if element.lower() in wanted:
                    return ("CCD_CONTROLS", element)
        return None

    def _gain_target(self) -> tuple[str, str] | None:
        return self._control(("CCD_GAIN", "GAIN"), ("Gain", "CONTROL_GAIN"))

    def _offset_target(self) -> tuple[str, str] | None:
        return self._control(("CCD_OFFSET", "OFFSET"), ("Offset", "CONTROL_OFFSET", "Brightness"))

    def set_gain(self, gain: float) -> None:
        target = self._gain_target()
        if target is None:
            raise PropertyMissing(f"{self.name} has no gain control (CCD_GAIN or CCD_CONTROLS Gain); remove gain")
        self.client.set_number(self.name, target[0], {target[1]: gain})

    def set_offset(self, offset: float) -> None:
        target = self._offset_target()
        if target is None:
            raise PropertyMissing(
                f"{self.name} has no offset control (CCD_OFFSET or CCD_CONTROLS Offset); remove offset"
            )
        self.client.set_number(self.name, target[0], {target[1]: offset})

    def gain(self) -> float | None:
        target = self._gain_target()
        return None if target is None else float(self._need(target[0]).values[target[1]])

    def offset(self) -> float | None:
        target = self._offset_target()
        return None if target is None else float(self._need(target[0]).values[target[1]])

    def set_binning(self, binning: int) -> None:
        """Bin and reset the frame for it (drivers keep CCD_FRAME in unbinned pixels)."""
        self.prepare(binning=binning)

    def binning(self) -> tuple[int, int]:
        values = self._need("CCD_BINNING").values
        return int(values["HOR_BIN"]), int(values["VER_BIN"])

    def set_frame_type(self, frame_type: str) -> None:
        if frame_type not in INDI_FRAME_TYPE:
            raise IndiError(f"unknown frame type {frame_type!r}; use one of {', '.join(FRAME_TYPES)}")
        self.client.set_switch(self.name, "CCD_FRAME_TYPE", [INDI_FRAME_TYPE[frame_type]])

    def readout_modes(self) -> tuple[str, ...]:
        """Readout modes as `ReadoutModes` names them (never CCD_CAPTURE_FORMAT, the pixel format)."""
        return self.modes.names()

    def current_readout_mode(self) -> str | None:
        return self.modes.current()

    def set_readout_mode(self, mode: str) -> None:
        self.modes.set(mode)
        self.readout_mode = self.modes.current()

    def bayer_pattern(self) -> str | None:
        if self._has("CCD_CFA"):
            pattern = str(self._need("CCD_CFA").values.get("CFA_TYPE", "")).strip()
            return pattern or None
        return None

    # ---- cooling -------------------------------------------------------------------------------
    def temperature(self) -> float | None:
        if not self._has("CCD_TEMPERATURE"):
            return None
        return float(self._need("CCD_TEMPERATURE").values["CCD_TEMPERATURE_VALUE"])

    def is_cooled(self) -> bool:
        """A cooler is a CCD_COOLER switch or a writable CCD_TEMPERATURE; uncooled cameras (Player
        One, ZWO ASI without a cooler, indiccd.cpp) publish CCD_TEMPERATURE read-only."""
        if self._has("CCD_COOLER"):
            return True
        return self._has("CCD_TEMPERATURE") and self._need("CCD_TEMPERATURE").permission != "ro"

    def temperature_frozen(self) -> bool:
        """True when the cooler's reading has not moved while it should have (see `TemperatureWatch`)."""
        self._observe_temperature()
        return self.temperature_watch.frozen()

    def _observe_temperature(self) -> None:
        temp = self.temperature()
        if temp is None or not self.is_cooled():
            return
        power = None
        if self._has("CCD_COOLER_POWER"):
            power = float(next(iter(self._need("CCD_COOLER_POWER").values.values()), 0.0))
        self.temperature_watch.observe(temp, power, self.set_point)

    def set_cooler(self, on: bool) -> None:
        if self._has("CCD_COOLER"):
            # Some drivers (the stock simulator) make CCD_COOLER write-only and never answer it.
            wait = self._need("CCD_COOLER").permission != "wo"
            self.client.set_switch(self.name, "CCD_COOLER", ["COOLER_ON" if on else "COOLER_OFF"], wait=wait)

    def set_temperature(self, celsius: float) -> None:
        """Turn the cooler on and ask for a set-point; returns at once (the driver ramps)."""
        if not self.is_cooled():
            raise PropertyMissing(
                f"{self.name} has no cooler (CCD_TEMPERATURE is read-only or absent); remove set_point — darks "
                "are then matched by the measured sensor temperature"
            )
        self.set_cooler(True)
        self.client.send_number(self.name, "CCD_TEMPERATURE", {"CCD_TEMPERATURE_VALUE": celsius})
        self.set_point = celsius

    def wait_temperature(self, celsius: float, tolerance: float = 0.5, timeout: float = 900.0) -> float:
        """Wait until CCD_TEMPERATURE is within tolerance of the set-point; time out with the reading.

        An uncooled camera has nothing to wait for: its reading is returned at once.
        """
        if not self.is_cooled():
            return float(self.temperature() or 0.0)
        try:
            snap = self.client.wait_for(
                self.name,
                "CCD_TEMPERATURE",
                lambda s: abs(float(s.values["CCD_TEMPERATURE_VALUE"]) - celsius) <= tolerance,
                timeout,
                f"{self.name} to reach {celsius:g} °C",
            )
        except IndiTimeout:
            now = self.temperature()
            raise IndiTimeout(
                f"{self.name} did not reach {celsius:g} °C within {timeout:g} s (at {now} °C); "
                "choose a warmer set-point or allow more time"
            ) from None
        return float(snap.values["CCD_TEMPERATURE_VALUE"])

    # ---- exposing ------------------------------------------------------------------------------
    def abort(self) -> None:
        """Abort the exposure in progress; a waiting `expose()` raises `ExposureAborted` at once."""
        self._abort.set()
        self.client.wake()
        if self._has("CCD_ABORT_EXPOSURE"):
            self.client.send_switch(self.name, "CCD_ABORT_EXPOSURE", ["ABORT"])

    def expose(
        self,
        exposure: float,
        frame_type: str = "light",
        filter_name: str | None = None,
        timeout: float | None = None,
        extra_header: dict[str, object] | None = None,
    ) -> Frame:
        """Expose and return the frame.

        A corrupt or truncated image, or one that never arrives (the exposure is then aborted), costs
        that frame only: it is taken again, up to `frame_retries` times in a row, and each retry is
        told to `on_fault`. A lost server or device is not retried here: it is the rig's problem.
        """
        if exposure < 0:
            raise ExposureFailed(f"exposure must be ≥ 0 s (got {exposure}); fix the exposure")
        failures = 0
        while True:
            try:
                return self._expose_once(exposure, frame_type, filter_name, timeout, extra_header)
            except (CorruptFile, ExposureFailed) as exc:
                if self._abort.is_set() or (self.stop_event is not None and self.stop_event.is_set()):
                    raise
                failures += 1
                if self.on_fault is not None:
                    self.on_fault("corrupt frame" if isinstance(exc, CorruptFile) else "exposure failed", exc)
                if failures > self.frame_retries:
                    log.error("%s: %d frames in a row failed; giving up on this one", self.name, failures)
                    raise
                log.warning("%s; taking the frame again (%d of %d)", exc, failures, self.frame_retries)

    def _expose_once(
        self,
        exposure: float,
        frame_type: str,
        filter_name: str | None,
        timeout: float | None,
        extra_header: dict[str, object] | None,
    ) -> Frame:
        self.set_frame_type(frame_type)
        stale = stale_settings(self.client, self.name) + self._geometry_stale()
        if stale or self.geometry is None:
            if stale:
                log.warning("%s: %s changed behind our back; setting them again", self.name, ", ".join(stale))
            self.prepare()
        self._observe_temperature()
        limits = self._need("CCD_EXPOSURE").limits.get("CCD_EXPOSURE_VALUE")
        if limits is not None and limits.maximum > limits.minimum:
            exposure = min(max(exposure, limits.minimum), limits.maximum)
        wall = exposure / max(self.time_factor, 1e-9)
        limit = timeout if timeout is not None else wall + self.download_timeout
        self._abort.clear()
        mark = self.client.blob_mark(self.name, "CCD1")
        start = dt.datetime.now(dt.UTC)
        sent = self.client.send_number(self.name, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": exposure})
        try:
            arrival = self.client.wait_blob(
                self.name, "CCD1", mark, limit, alert_on="CCD_EXPOSURE", alert_after=sent,
                cancel=_Cancel(self._abort, self.stop_event),
            )
        except ExposureAborted:
            if not self._abort.is_set():  # stopped from outside: make sure the camera stops too
                with contextlib.suppress(IndiError):
                    self.client.send_switch(self.name, "CCD_ABORT_EXPOSURE", ["ABORT"])
            raise
        except IndiTimeout:
            with contextlib.suppress(IndiError):
                self.abort()
            raise ExposureFailed(
                f"{self.name}: no image within {limit:.0f} s of a {exposure:g} s exposure; exposure aborted — "
                "check the camera connection and driver"
            ) from None
        except (ServerLost, DeviceMissing):
            raise
        except IndiError as exc:
            raise ExposureFailed(f"{self.name}: exposure failed: {exc}") from exc
        data, header = decode_fits_blob(arrival.data, self.name, arrival.fmt)
        if self.geometry is not None:
            g = self.geometry
            check_frame(data, header, self.name, g.width, g.height, g.binning, g.bit_depth)
        self._complete_header(header, frame_type, exposure, filter_name, start, extra_header)
        return Frame(data=data, header=header)

    def _complete_header(
        self,
        header: fits.Header,
        frame_type: str,
        exposure: float,
        filter_name: str | None,
        start: dt.datetime,
        extra: dict[str, object] | None,
    ) -> None:
        """Fill the keys every frame must carry from INDI state where the driver left them out."""
        header["IMAGETYP"] = (IMAGETYP[frame_type], "type of frame")
        header["FRAMETYP"] = (frame_type, "obsagent frame type")
        header.setdefault("EXPTIME", exposure)
        header.setdefault("DATE-OBS", start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3])
        temp = self.temperature() if "CCD-TEMP" not in header else None
        if temp is not None:
            header["CCD-TEMP"] = (round(temp, 2), "sensor temperature [C]")
        if not self.is_cooled():
            header["COOLED"] = (False, "no cooler: darks match by CCD-TEMP")
        elif self.set_point is not None:
            header["SET-TEMP"] = (self.set_point, "cooler set-point [C]")
        gain = self.gain()
        if gain is not None:
            header["GAIN"] = (gain, "sensor gain setting")
        offset = self.offset()
        if offset is not None:
            header["OFFSET"] = (offset, "sensor offset setting")
        if self._has("CCD_BINNING"):
            xbin, ybin = self.binning()
            header["XBINNING"] = xbin
            header["YBINNING"] = ybin
        if filter_name is not None:
            header["FILTER"] = (filter_name, "filter in the light path")
        elif "FILTER" not in header and self._has("FILTER_SLOT") and self._has("FILTER_NAME"):
            slot = int(self._need("FILTER_SLOT").values["FILTER_SLOT_VALUE"])
            names = list(self._need("FILTER_NAME").values.values())
            if 1 <= slot <= len(names):
                header["FILTER"] = (names[slot - 1], "filter in the light path")
        header["INSTRUME"] = (self.name, "camera")
        mode = self.current_readout_mode() or self.readout_mode
        if mode is not None:
            header["READOUTM"] = (mode, "readout mode")
        pattern = self.bayer_pattern()
        if pattern is not None:
            header.setdefault("BAYERPAT", pattern)
        if self._has("CCD_INFO"):
            header.setdefault("BITDEPTH", int(self._need("CCD_INFO").values.get("CCD_BITSPERPIXEL", 16)))
        for key, value in (extra or {}).items():
            header[key] = value


class StopSignal(Protocol):
    """Anything that says "stop now" (a threading.Event, or the night's abort-or-unsafe signal)."""

    def is_set(self) -> bool: ...


class _Cancel:
    """Set when the camera's own abort or the owner's stop event is set."""

    def __init__(self, *events: StopSignal | None) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def frame_median(frame: Frame) -> float:
    """Median ADU of a frame (used for quick level checks)."""
    return float(np.median(frame.data))
