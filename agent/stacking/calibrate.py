"""Calibration as callers outside the stacking package import it: the master recipe
(`recipes`) and light calibration (`lights`, `masterset`) under the names they use."""

from __future__ import annotations

from agent.stacking.lights import SENSOR_KINDS, CalibratedLight, CalibrationOptions, calibrate
from agent.stacking.masterset import MasterSet
from agent.stacking.recipes import MASTER_KINDS, build_master

__all__ = [
    "MASTER_KINDS",
    "SENSOR_KINDS",
    "CalibratedLight",
    "CalibrationOptions",
    "MasterSet",
    "build_master",
    "calibrate",
]
