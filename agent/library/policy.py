"""The calibration policy a sequence file asks for, as the library's `LibraryPolicy`.

One translation for every part that reads a sequence file (the night, `obsagent report`, the
dashboard's `--sequence`), so they never disagree about what the library should do. The library
only reads the sequence's fields here; it imports the sequence model for type checking alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.library.keys import LOOSER_FIELDS, FrameType, LibraryPolicy

if TYPE_CHECKING:
    from agent.config.model import Sequence


def library_policy(seq: Sequence) -> LibraryPolicy:
    cal = seq.calibration
    masters = cal.masters
    looser: set[str] = set()
    allow = cal.allow_looser
    if allow.temperature_within is not None:
        looser.add("temperature")
    if allow.scaled_darks:
        looser.add("exposure")
    stack = seq.stacking
    stacking = (
        ("rejection", stack.rejection),
        ("low", stack.low),
        ("high", stack.high),
        ("combine", stack.combine),
        ("memory_limit_mb", stack.memory_limit_mb),
    )
    return LibraryPolicy(
        min_frames={
            FrameType.BIAS: masters.bias.min_frames,
            FrameType.DARK: masters.dark.min_frames,
            FrameType.DARKFLAT: masters.darkflat.min_frames,
            FrameType.FLAT: masters.flat.min_frames,
        },
        max_age_days={
            FrameType.BIAS: masters.bias.max_age_days,
            FrameType.DARK: masters.dark.max_age_days,
            FrameType.DARKFLAT: masters.darkflat.max_age_days,
            FrameType.FLAT: masters.flat.max_age_days,
        },
        temperature_tolerance=cal.temperature_tolerance,
        looser_matches=frozenset(looser & LOOSER_FIELDS),
        looser_temperature_within=allow.temperature_within,
        max_clipped_fraction=cal.max_clipped_percent / 100.0,
        expired_masters=allow.expired_masters,
        bias_for_flats=allow.bias_for_darkflats,
        stacking=stacking,
    )
