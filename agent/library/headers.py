"""Reading a frame's configuration from the FITS header dialects capture programs write.

NINA, Ekos/INDI, SharpCap, ASIAIR and obsagent's own capture spell the frame type and a few
keywords differently; everything else is the common SBIG/MaxIm set (INSTRUME, GAIN, OFFSET,
SET-TEMP, CCD-TEMP, EXPOSURE/EXPTIME, XBINNING, FILTER, READOUTM, DATE-OBS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import ObsAgentError
from agent.library.keys import FrameType, exposure_key

if TYPE_CHECKING:
    from astropy.io import fits

# Normalised IMAGETYP/FRAME spellings (lower case, spaces, '_' and '-' removed).
_TYPE_WORDS: dict[str, FrameType] = {
    "light": FrameType.LIGHT,
    "lightframe": FrameType.LIGHT,
    "object": FrameType.LIGHT,
    "science": FrameType.LIGHT,
    "dark": FrameType.DARK,
    "darkframe": FrameType.DARK,
    "bias": FrameType.BIAS,
    "biasframe": FrameType.BIAS,
    "zero": FrameType.BIAS,
    "flat": FrameType.FLAT,
    "flatframe": FrameType.FLAT,
    "flatfield": FrameType.FLAT,
    "skyflat": FrameType.FLAT,
    "darkflat": FrameType.DARKFLAT,
    "darkflatframe": FrameType.DARKFLAT,
    "flatdark": FrameType.DARKFLAT,
    "flatdarkframe": FrameType.DARKFLAT,
}

# Words in folder and file names (ASIAIR names files `Dark_180.0s_Bin1_...`).
_PATH_WORDS: dict[str, FrameType] = {
    "light": FrameType.LIGHT,
    "lights": FrameType.LIGHT,
    "dark": FrameType.DARK,
    "darks": FrameType.DARK,
    "bias": FrameType.BIAS,
    "biases": FrameType.BIAS,
    "flat": FrameType.FLAT,
    "flats": FrameType.FLAT,
    "darkflat": FrameType.DARKFLAT,
    "darkflats": FrameType.DARKFLAT,
    "flatdark": FrameType.DARKFLAT,
    "flatdarks": FrameType.DARKFLAT,
}


class UnreadableFrame(ObsAgentError):
    """A file is not a raw frame the library can key; it is quarantined with this reason."""


@dataclass(frozen=True)
class FrameInfo:
    """What the library records about one raw frame, read from its header and pixels."""

    frame_type: FrameType
    camera: str
    width: int
    height: int
    binning: str
    gain: float | None
    offset: float | None
    readout_mode: str | None
    bit_depth: int
    filter: str | None
    exposure: float
    set_temp: float | None
    ccd_temp: float | None
    captured_at: float
    dialect: str
    notes: tuple[str, ...] = field(default=())

    @property
    def temperature(self) -> float | None:
        """The temperature frames are keyed and grouped by: what the sensor measured, else the
        set-point (the set-point is only a request; a weak cooler does not reach it)."""
        return self.ccd_temp if self.ccd_temp is not None else self.set_temp

    @property
    def exposure_key(self) -> float | None:
        return exposure_key(self.frame_type, self.exposure)


def detect_dialect(header: fits.Header) -> str:
    text = " ".join(
        str(header.get(k, "")) for k in ("SWCREATE", "CREATOR", "PROGRAM", "ORIGIN", "SOFTWARE")
    ).lower()
    if "obsagent" in text:
        return "obsagent"
    if "n.i.n.a" in text or "nina" in text.split():
        return "nina"
    if "sharpcap" in text:
        return "sharpcap"
    if "asiair" in text:
        return "asiair"
    if "ekos" in text or "kstars" in text or "indi" in text:
        return "ekos"
    imagetyp = str(header.get("IMAGETYP", ""))
    if imagetyp in ("Light Frame", "Dark Frame", "Flat Field", "Bias Frame", "Flat Frame"):
        return "ekos"
    return "generic"


def frame_type_from_header(header: fits.Header) -> FrameType | None:
    for keyword in ("IMAGETYP", "FRAMETYP", "FRAME"):
        raw = header.get(keyword)
        if raw is None or str(raw).strip() == "":
            continue
        word = re.sub(r"[\s_\-]+", "", str(raw).strip().lower())
        if word.startswith("master"):
            raise UnreadableFrame(f"{keyword} '{raw}' is a master, not a raw frame")
        if word in _TYPE_WORDS:
            return _TYPE_WORDS[word]
        raise UnreadableFrame(
            f"unknown {keyword} '{raw}'; re-ingest with --type light|dark|flat|bias|darkflat"
        )
    return None


def frame_type_from_path(path: Path) -> FrameType | None:
    """The frame type named by the file name or its two nearest folders; None if none or ambiguous."""
    parts = [path.stem, path.parent.name, path.parent.parent.name]
    for part in parts:
        tokens = [t for t in re.split(r"[^a-z]+", part.lower()) if t]
        found = {_PATH_WORDS[t] for t in tokens if t in _PATH_WORDS}
        if FrameType.DARK in found and FrameType.FLAT in found:
            found = (found - {FrameType.DARK, FrameType.FLAT}) | {FrameType.DARKFLAT}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return None
    return None


def parse_date_obs(value: str) -> float:
    """DATE-OBS as epoch seconds; NINA writes 3 fraction digits, SGP 7, some none."""
    text = value.strip().rstrip("Z")
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?", text)
    if not m:
        raise ValueError(value)
    frac = (m.group(3) or "0")[:6].ljust(6, "0")
    dt = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}").replace(tzinfo=UTC)
    return dt.timestamp()


def _float(header: fits.Header, *names: str) -> float | None:
    for name in names:
        if name in header and header[name] not in (None, ""):
            try:
                return float(header[name])
            except (TypeError, ValueError) as exc:
                raise UnreadableFrame(f"{name} = {header[name]!r} is not a number") from exc
    return None


def _text(header: fits.Header, *names: str) -> str | None:
    for name in names:
        value = header.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def frame_info(
    header: fits.Header,
    shape: tuple[int, ...],
    bitpix: int,
    path: Path,
    *,
    frame_type: FrameType | None = None,
    mtime: float | None = None,
) -> FrameInfo:
    """Key a raw frame. `frame_type` overrides the header (for files written without IMAGETYP)."""
    notes: list[str] = []
    dialect = detect_dialect(header)
    ftype = frame_type
    if ftype is None:
        ftype = frame_type_from_header(header)
    if ftype is None:
        ftype = frame_type_from_path(path)
        if ftype is None:
            raise UnreadableFrame("no IMAGETYP in header and none in the file name; re-ingest with --type")
        notes.append("frame type from file name")

    camera = _text(header, "INSTRUME", "CAMERA", "DETECTOR")
    if camera is None:
        raise UnreadableFrame("no INSTRUME (camera name) in header")

    if len(shape) < 2:
        raise UnreadableFrame(f"image has {len(shape)} axes; a frame needs 2")
    height, width = int(shape[-2]), int(shape[-1])

    xbin = _float(header, "XBINNING", "CCDXBIN")
    ybin = _float(header, "YBINNING", "CCDYBIN")
    if xbin is None:
        notes.append("no XBINNING, taken as 1")
    binning = f"{int(xbin or 1)}x{int(ybin or xbin or 1)}"

    exposure = _float(header, "EXPOSURE", "EXPTIME", "EXP")
    if exposure is None:
        if ftype is not FrameType.BIAS:
            raise UnreadableFrame("no EXPOSURE or EXPTIME in header")
        exposure = 0.0

    date = _text(header, "DATE-OBS", "DATE-BEG")
    if date is not None:
        try:
            captured = parse_date_obs(date)
        except ValueError as exc:
            raise UnreadableFrame(f"DATE-OBS '{date}' is not an ISO date") from exc
    elif mtime is not None:
        captured = mtime
        notes.append("no DATE-OBS, capture time from file time")
    else:
        raise UnreadableFrame("no DATE-OBS in header")

    keeps_filter = ftype in (FrameType.FLAT, FrameType.LIGHT)
    return FrameInfo(
        frame_type=ftype,
        camera=camera,
        width=width,
        height=height,
        binning=binning,
        gain=_float(header, "GAIN"),
        offset=_float(header, "OFFSET"),
        readout_mode=_text(header, "READOUTM", "READMODE"),
        bit_depth=abs(int(bitpix)),
        filter=_text(header, "FILTER") if keeps_filter else None,
        exposure=float(exposure),
        set_temp=_float(header, "SET-TEMP", "SETTEMP"),
        ccd_temp=_float(header, "CCD-TEMP", "CCD_TEMP", "TEMPERAT"),
        captured_at=captured,
        dialect=dialect,
        notes=tuple(notes),
    )


def read_frame_info(path: Path, *, frame_type: FrameType | None = None) -> FrameInfo:
    """Open a file and key it; any problem becomes `UnreadableFrame` with the reason."""
    from agent.errors import CorruptFile
    from agent.fitsfile import read_fits

    try:
        data, header = read_fits(path)
    except CorruptFile as exc:
        raise UnreadableFrame(str(exc)) from exc
    bitpix = int(header.get("BITPIX", 16))
    return frame_info(header, data.shape, bitpix, path, frame_type=frame_type, mtime=path.stat().st_mtime)
