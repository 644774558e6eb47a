"""Faults a test can inject through the SIM_FAULTS property (or the config's `faults`): what each
device offers, how a client switches them, and what they do to an image on its way out.

The camera's exposure hang and mid-exposure exit are checked where the exposure runs; the weak
cooler is `Cooler.weak`; the frozen temperature reading is `Camera.reading`; the cap jam is
checked where the cap moves.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

import numpy as np
from indipydriver import SwitchMember, SwitchVector

from indi_sim.world import Observatory

log = logging.getLogger("indi_obsagent_sim")

CAMERA_FAULTS = {
    "FAULT_EXPOSURE_HANG": "Exposure never completes",
    "FAULT_BLOB_TRUNCATED": "Truncated image",
    "FAULT_BLOB_CORRUPT": "Corrupt image",
    "FAULT_BLOB_CORRUPT_ONCE": "Corrupt the next image only",
    "FAULT_DRIVER_EXIT": "Driver exits mid-exposure",
    "FAULT_COOLER_WEAK": "Cooler cannot reach set-point",
    "FAULT_TEMPERATURE_FROZEN": "Temperature reading frozen",
}
PANEL_FAULTS = {"FAULT_CAP_JAM": "Cap jams"}


def fault_switches(offered: dict[str, str], active: set[str]) -> SwitchVector:
    """A device's SIM_FAULTS property: one switch per fault it offers, On when active."""
    return SwitchVector("SIM_FAULTS", "Inject faults", "Simulation", "rw", "AnyOfMany", "Ok",
                        [SwitchMember(k, v, "On" if k in active else "Off") for k, v in offered.items()])


async def switch_faults(world: Observatory, vector: object, values: dict[str, str]) -> None:
    """A client turned faults on or off (allowed while disconnected, like a real fault would be)."""
    for element, value in values.items():
        vector[element] = value  # type: ignore[index]
        if value == "On":
            world.faults.add(element)
        else:
            world.faults.discard(element)
    world.cooler.weak = "FAULT_COOLER_WEAK" in world.faults
    await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]


def damaged_image(blob: bytes, faults: set[str]) -> bytes:
    """The image as the client receives it: cut short or replaced by noise when those faults are on.

    FAULT_BLOB_CORRUPT_ONCE damages one image and switches itself off (removed from `faults`), so a
    test can count exactly how many corrupt frames it caused.
    """
    if "FAULT_BLOB_CORRUPT_ONCE" in faults:
        faults.discard("FAULT_BLOB_CORRUPT_ONCE")
        return np.random.default_rng(len(blob) + 1).integers(0, 256, len(blob), dtype=np.uint8).tobytes()
    if "FAULT_BLOB_TRUNCATED" in faults:
        blob = blob[: len(blob) // 3]
    elif "FAULT_BLOB_CORRUPT" in faults:
        blob = np.random.default_rng(len(blob)).integers(0, 256, len(blob), dtype=np.uint8).tobytes()
    return blob


def exit_mid_exposure() -> NoReturn:
    """FAULT_DRIVER_EXIT: the process dies at once, as a crashing driver would (no cleanup)."""
    log.error("injected fault: driver exits mid-exposure")
    sys.stdout.flush()
    os._exit(1)
