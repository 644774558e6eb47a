"""Telling raw frames from processed ones before anything is keyed.

A master, a calibrated light or a stack in a folder of raw frames must never be counted as a raw
frame or stacked into a master. What gives each one away, as the programs write it:

- masters: IMAGETYP 'Master Dark' / 'Master Flat' / 'Master Light' (obsagent, PixInsight WBPP,
  NINA-era tools), CALFRAME 'MasterFlat' (Astro Pixel Processor), a PixInsight integration's
  HISTORY 'ImageIntegration.numberOfImages: N', Siril's PROGRAM 'Siril ...' with STACKCNT;
- calibrated lights: CALSTAT (MaxIm 'BDF'; obsagent writes it too), MaxIm's HISTORY
  'Dark Subtraction' / 'Flat Field', obsagent's HISTORY '... calibration:';
- stacks: STACKCNT > 1 (Siril, Seestar), NCOMBINE > 1, NUMFRAME > 1 or INTEGRAT (APP),
  SNAPSHOT > 1 (APT's 'Number of images combined');
- colour images: a third axis of more than one plane (NAXIS3 = 3 after debayering or stacking).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.library import dialects
from agent.library.keys import FrameType

if TYPE_CHECKING:
    from astropy.io import fits


class Processing(enum.StrEnum):
    MASTER = "master"
    CALIBRATED = "calibrated"
    STACKED = "stacked"
    COLOUR = "colour"


@dataclass(frozen=True)
class ProcessedEvidence:
    """What a file is, and the header card or shape that says so."""

    kind: Processing
    evidence: str
    master_type: FrameType | None = None  # for a master: dark, flat ... when the header says

    def reason(self) -> str:
        """One line for the ingest output: what it is, and what to do instead."""
        if self.kind is Processing.MASTER:
            return (
                f"a master, not a raw frame ({self.evidence}); import it with "
                "`obsagent library ingest --masters PATH`"
            )
        if self.kind is Processing.CALIBRATED:
            return f"a calibrated light, not a raw frame ({self.evidence}); ingest the raw lights instead"
        if self.kind is Processing.COLOUR:
            return f"a colour image, not a raw frame ({self.evidence}); raw frames have one plane"
        return f"a stack, not a raw frame ({self.evidence}); ingest the frames it was made from"


_MASTER_WORDS = re.compile(r"^master(.*)$")
_INTEGRATION = re.compile(r"(?:Image|Fast)Integration\.numberOfImages:\s*(\d+)", re.IGNORECASE)
_MAXIM_CALIBRATION = ("dark subtraction", "flat field", "bias subtraction")


def _count(header: fits.Header, name: str) -> int | None:
    try:
        value = dialects.number(header, name)
    except dialects.HeaderValueError:
        return None
    return None if value is None else int(value)


def master_type_word(word: str) -> FrameType | None:
    """'masterdark' -> dark; None when the rest is not a calibration type (a master light)."""
    m = _MASTER_WORDS.match(word)
    if m is None:
        return None
    found = dialects.TYPE_WORDS.get(m.group(1))
    return found if found is not FrameType.LIGHT else None


def integration_count(header: fits.Header) -> int | None:
    """How many frames a PixInsight integration combined (its HISTORY), else None."""
    for line in dialects.history(header):
        m = _INTEGRATION.search(line)
        if m:
            return int(m.group(1))
    return None


def source_count(header: fits.Header) -> int | None:
    """How many frames a processed file was made from, as its writer recorded it."""
    for name in ("STACKCNT", "NCOMBINE", "NUMFRAME"):
        n = _count(header, name)
        if n is not None:
            return n
    return integration_count(header)


def classify(header: fits.Header, shape: tuple[int, ...]) -> ProcessedEvidence | None:
    """What kind of processed file this is, or None for a raw frame."""
    for keyword in dialects.TYPE_KEYWORDS:
        raw = header.get(keyword)
        word = dialects.type_word(raw) if raw is not None else ""
        if word.startswith("master"):
            kind = master_type_word(word)
            if kind is None:
                return ProcessedEvidence(Processing.STACKED, f"{keyword} '{str(raw).strip()}'")
            return ProcessedEvidence(Processing.MASTER, f"{keyword} '{str(raw).strip()}'", kind)
    calframe = dialects.text(header, "CALFRAME")
    if calframe is not None:
        return ProcessedEvidence(
            Processing.MASTER, f"CALFRAME '{calframe}'", master_type_word(dialects.type_word(calframe))
        )
    calstat = dialects.text(header, "CALSTAT")
    if calstat is not None:
        return ProcessedEvidence(Processing.CALIBRATED, f"CALSTAT '{calstat}'")
    for line in dialects.history(header):
        low = line.strip().lower()
        if low.startswith(_MAXIM_CALIBRATION) or re.match(r"obsagent \S+ calibration:", low):
            return ProcessedEvidence(Processing.CALIBRATED, f"HISTORY '{line.strip()[:40]}'")
    integrated = integration_count(header)
    program = (dialects.text(header, "PROGRAM") or "").lower()
    for name in ("STACKCNT", "NCOMBINE", "NUMFRAME", "SNAPSHOT"):
        n = _count(header, name)
        if n is not None and n > 1:
            what = _stack_or_master(header, program)
            return ProcessedEvidence(
                what, f"{name} = {n}", _calibration_type(header) if what is Processing.MASTER else None
            )
    if integrated is not None:
        what = _stack_or_master(header, "pixinsight")
        return ProcessedEvidence(
            what,
            f"HISTORY ImageIntegration.numberOfImages: {integrated}",
            _calibration_type(header) if what is Processing.MASTER else None,
        )
    if dialects.text(header, "INTEGRAT") is not None:
        return ProcessedEvidence(Processing.STACKED, f"INTEGRAT '{dialects.text(header, 'INTEGRAT')}'")
    if len(shape) >= 3 and any(int(n) > 1 for n in shape[:-2]):
        return ProcessedEvidence(Processing.COLOUR, f"NAXIS3 = {int(shape[-3])}")
    return None


def _calibration_type(header: fits.Header) -> FrameType | None:
    for keyword in dialects.TYPE_KEYWORDS:
        raw = header.get(keyword)
        if raw is not None:
            found = dialects.TYPE_WORDS.get(dialects.type_word(raw))
            if found is not None:
                return found
    return None


def _stack_or_master(header: fits.Header, program: str) -> Processing:
    """A combination of calibration frames is a master; of lights (or of no stated type from a
    program that is not a master maker) it is a stack. Siril's masters keep no IMAGETYP."""
    kind = _calibration_type(header)
    if kind is not None and kind is not FrameType.LIGHT:
        return Processing.MASTER
    if kind is None and "siril" in program:
        return Processing.MASTER
    return Processing.STACKED
