"""Capture hygiene: put a camera in a known state before capturing, and check the driver took it.

Real drivers keep the last client's settings in `~/.indi/<device>_config.xml` (indiccd.cpp loads
CCD_TRANSFER_FORMAT, CCD_COMPRESSION, UPLOAD_MODE, CCD_CAPTURE_FORMAT and the frame from it), so
Ekos or another client may have left: compression on (an fpack'd `.fits.fz` BLOB), native transfer
(`.raw`, not FITS), local upload (no BLOB ever comes), a sub-frame in CCD_FRAME (small frames
without a word), or an 8-bit capture format. Each is set to what we need and read back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.devices.client import IndiClient
from agent.errors import IndiError

# element to switch on, per property, when the property exists
WANTED_SWITCHES = {
    "CCD_TRANSFER_FORMAT": "FORMAT_FITS",
    "CCD_COMPRESSION": "INDI_DISABLED",
    "UPLOAD_MODE": "UPLOAD_CLIENT",
}
_RAW16 = re.compile(r"raw[ _]?16|16[ _-]?bit", re.IGNORECASE)
_EIGHT = re.compile(r"8[ _-]?bit|raw[ _]?8\b|rgb|rgb24|y8", re.IGNORECASE)


class CaptureSetupError(IndiError):
    """The camera would not take a setting capture needs."""


@dataclass(frozen=True)
class CaptureGeometry:
    """What a frame must look like after hygiene: its size in binned pixels and its binning."""

    width: int
    height: int
    binning: int
    bit_depth: int = 16


@dataclass(frozen=True)
class Roi:
    """A region in unbinned sensor pixels (as CCD_FRAME takes it)."""

    x: int
    y: int
    width: int
    height: int


def raw16_element(labels: dict[str, str]) -> str | None:
    """The CCD_CAPTURE_FORMAT element that gives 16-bit raw pixels ("Raw 16 bit", ASI_IMG_RAW16,
    POA_RAW16), else a raw or mono one that is not 8-bit (INDI_RAW, INDI_MONO); None when unsure."""
    def text(e: str) -> str:
        return f"{e} {labels.get(e, '')}"

    for element in labels:
        if _RAW16.search(text(element)):
            return element
    for element in labels:
        t = text(element).lower()
        if ("raw" in t or "mono" in t) and not _EIGHT.search(text(element)):
            return element
    return None


def stale_settings(client: IndiClient, device: str) -> list[str]:
    """Which of the switches hygiene owns are not as we need them (read from snapshots, no sends)."""
    wrong = []
    for prop, element in WANTED_SWITCHES.items():
        if client.has(device, prop) and not client.get(device, prop).values.get(element):
            wrong.append(prop)
    if client.has(device, "CCD_CAPTURE_FORMAT"):
        snap = client.get(device, "CCD_CAPTURE_FORMAT")
        want = raw16_element({k: snap.labels.get(k, "") for k in snap.values})
        if want is not None and not snap.values.get(want):
            wrong.append("CCD_CAPTURE_FORMAT")
    return wrong


def prepare_capture(
    client: IndiClient, device: str, binning: int, roi: Roi | None = None, timeout: float = 10.0
) -> CaptureGeometry:
    """Set FITS transfer, no compression, client upload, 16-bit raw, binning and the frame; verify each."""
    for prop, element in WANTED_SWITCHES.items():
        if client.has(device, prop) and client.get(device, prop).permission != "ro":
            _switch(client, device, prop, element, timeout)
    if client.has(device, "CCD_CAPTURE_FORMAT"):
        snap = client.get(device, "CCD_CAPTURE_FORMAT")
        raw16 = raw16_element({k: snap.labels.get(k, "") for k in snap.values})
        if raw16 is not None:
            _switch(client, device, "CCD_CAPTURE_FORMAT", raw16, timeout)
    if client.has(device, "CCD_BINNING"):
        client.set_number(device, "CCD_BINNING", {"HOR_BIN": binning, "VER_BIN": binning}, timeout=timeout)
        got = client.get(device, "CCD_BINNING").values
        if (int(got["HOR_BIN"]), int(got["VER_BIN"])) != (binning, binning):
            raise CaptureSetupError(
                f"{device} did not take binning {binning} (reports {int(got['HOR_BIN'])}x{int(got['VER_BIN'])}); "
                "choose a binning the camera supports"
            )
    info = client.get(device, "CCD_INFO").values
    max_x, max_y = int(info.get("CCD_MAX_X", 0)), int(info.get("CCD_MAX_Y", 0))
    region = roi or Roi(0, 0, max_x, max_y)
    if client.has(device, "CCD_FRAME"):
        wanted = {"X": region.x, "Y": region.y, "WIDTH": region.width, "HEIGHT": region.height}
        client.set_number(device, "CCD_FRAME", wanted, timeout=timeout)
        got = client.get(device, "CCD_FRAME").values
        if any(abs(float(got[k]) - v) > 0.5 for k, v in wanted.items()):
            raise CaptureSetupError(
                f"{device} did not take the frame {wanted} (reports "
                f"{ {k: int(float(got[k])) for k in wanted} }); fix roi or reset the camera's frame"
            )
    return CaptureGeometry(width=region.width // binning, height=region.height // binning, binning=binning)


def _switch(client: IndiClient, device: str, prop: str, element: str, timeout: float) -> None:
    try:
        client.set_switch(device, prop, [element], timeout=timeout)
    except IndiError as exc:
        raise CaptureSetupError(f"{device} refused {prop}={element}: {exc}") from exc
    if not client.get(device, prop).values.get(element):
        raise CaptureSetupError(f"{device} did not take {prop}={element}; set it by hand in the driver and retry")


def bit_depth_problem(client: IndiClient, device: str, declared: int | None) -> str | None:
    """Why the camera disagrees with the sequence file's `camera.bit_depth`, or None.

    Drivers report the bits per pixel they send in CCD_INFO (16 for any 12- or 14-bit sensor read
    as 16-bit raw, 8 in an 8-bit capture format); ZWO's driver also publishes its ADC's depth as
    ADC_DEPTH.BITS. The declared depth must fit the pixels sent, an 8-bit declaration needs 8-bit
    pixels, and where the driver names a narrower ADC the declaration must be that ADC's depth.
    """
    if declared is None or not client.has(device, "CCD_INFO"):
        return None
    sent = int(float(client.get(device, "CCD_INFO").values.get("CCD_BITSPERPIXEL", 0) or 0))
    if sent <= 0:
        return None
    adc = 0
    if client.has(device, "ADC_DEPTH"):
        adc = int(float(client.get(device, "ADC_DEPTH").values.get("BITS", 0) or 0))
    fix = "set camera.bit_depth to what the camera delivers (or leave it out), or change the capture format"
    if declared > sent or (declared == 8) != (sent == 8):
        return f"camera.bit_depth is {declared} but {device} sends {sent}-bit pixels (CCD_INFO); {fix}"
    if 0 < adc < sent and declared not in (adc, sent):
        return (
            f"camera.bit_depth is {declared} but {device} reports a {adc}-bit ADC in {sent}-bit pixels "
            f"(ADC_DEPTH); {fix}"
        )
    return None
