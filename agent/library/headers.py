"""Reading a raw frame's configuration from whichever program's header it has.

The keywords of each program are read by `dialects`; files that are not raw frames (masters,
calibrated lights, stacks, colour images) are recognised by `processed` and refused here with the
reason, before anything is keyed; camera names are made canonical by `camera_names`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import ObsAgentError
from agent.library import dialects, processed
from agent.library.camera_names import canonical_camera
from agent.library.keys import FrameType, exposure_key
from agent.library.processed import ProcessedEvidence

if TYPE_CHECKING:
    from astropy.io import fits

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


class ProcessedFile(UnreadableFrame):
    """A master, calibrated light, stack or colour image: never a raw frame. Ingest skips it
    (no row) and says why; masters are imported with `--masters`."""

    def __init__(self, found: ProcessedEvidence) -> None:
        super().__init__(found.reason())
        self.found = found


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
    return dialects.dialect(header)


def frame_type_from_header(header: fits.Header) -> FrameType | None:
    for keyword in dialects.TYPE_KEYWORDS:
        raw = header.get(keyword)
        if raw is None or str(raw).strip() == "":
            continue
        word = dialects.type_word(raw)
        if word in dialects.TYPE_WORDS:
            return dialects.TYPE_WORDS[word]
        raise UnreadableFrame(
            f"unknown {keyword} '{str(raw).strip()}'; re-ingest with --type light|dark|flat|bias|darkflat"
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


def capture_time(header: fits.Header, mtime: float | None, notes: list[str]) -> float:
    date = dialects.text(header, "DATE-OBS", "DATE-BEG")
    if date is not None:
        try:
            return parse_date_obs(date)
        except ValueError as exc:
            raise UnreadableFrame(f"DATE-OBS '{date}' is not an ISO date") from exc
    if mtime is not None:
        notes.append("no DATE-OBS, capture time from file time")
        return mtime
    raise UnreadableFrame("no DATE-OBS in header")


def refuse_processed(header: fits.Header, shape: tuple[int, ...]) -> None:
    """Raise `ProcessedFile` for a master, calibrated light, stack or colour image."""
    found = processed.classify(header, shape)
    if found is not None:
        raise ProcessedFile(found)


def frame_info(
    header: fits.Header,
    shape: tuple[int, ...],
    bitpix: int,
    path: Path,
    *,
    frame_type: FrameType | None = None,
    mtime: float | None = None,
    aliases: dict[str, str] | None = None,
) -> FrameInfo:
    """Key a raw frame. `frame_type` overrides the header (for files written without IMAGETYP);
    `aliases` is the user's camera table (see `camera_names`)."""
    refuse_processed(header, shape)
    try:
        return _frame_info(header, shape, bitpix, path, frame_type, mtime, aliases)
    except dialects.HeaderValueError as exc:
        raise UnreadableFrame(str(exc)) from exc


def _frame_info(
    header: fits.Header,
    shape: tuple[int, ...],
    bitpix: int,
    path: Path,
    frame_type: FrameType | None,
    mtime: float | None,
    aliases: dict[str, str] | None,
) -> FrameInfo:
    notes: list[str] = []
    ftype = frame_type
    if ftype is None:
        ftype = frame_type_from_header(header)
    if ftype is None:
        ftype = frame_type_from_path(path)
        if ftype is None:
            raise UnreadableFrame("no IMAGETYP in header and none in the file name; re-ingest with --type")
        notes.append("frame type from file name")

    written = dialects.camera_name(header)
    if written is None:
        raise UnreadableFrame("no INSTRUME (camera name) in header")
    camera = canonical_camera(written, aliases)
    if camera != written:
        notes.append(f"camera '{written}' keyed as '{camera}'")

    if len(shape) < 2:
        raise UnreadableFrame(f"image has {len(shape)} axes; a frame needs 2")
    height, width = int(shape[-2]), int(shape[-1])

    bins = dialects.binning(header)
    if bins is None:
        notes.append("no XBINNING, taken as 1")
        bins = (1, 1)

    exposure = dialects.exposure(header)
    if exposure is None:
        if ftype is not FrameType.BIAS:
            raise UnreadableFrame("no EXPOSURE or EXPTIME in header")
        exposure = 0.0

    keeps_filter = ftype in (FrameType.FLAT, FrameType.LIGHT)
    return FrameInfo(
        frame_type=ftype,
        camera=camera,
        width=width,
        height=height,
        binning=f"{bins[0]}x{bins[1]}",
        gain=dialects.gain(header),
        offset=dialects.offset(header),
        readout_mode=dialects.readout_mode(header),
        bit_depth=abs(int(bitpix)),
        filter=dialects.filter_name(header) if keeps_filter else None,
        exposure=float(exposure),
        set_temp=dialects.set_point(header),
        ccd_temp=dialects.sensor_temperature(header),
        captured_at=capture_time(header, mtime, notes),
        dialect=dialects.dialect(header),
        notes=tuple(notes),
    )


def read_frame_info(
    path: Path, *, frame_type: FrameType | None = None, aliases: dict[str, str] | None = None
) -> FrameInfo:
    """Open a file and key it; any problem becomes `UnreadableFrame` with the reason (a
    processed file becomes its subclass `ProcessedFile`)."""
    from agent.errors import CorruptFile
    from agent.fitsfile import read_fits

    try:
        data, header = read_fits(path)
    except CorruptFile as exc:  # a cube is refused by the reader: say what it is if the header can
        found = _classify_header_only(path)
        if found is not None:
            raise ProcessedFile(found) from exc
        raise UnreadableFrame(str(exc)) from exc
    bitpix = int(header.get("BITPIX", 16))
    return frame_info(
        header, data.shape, bitpix, path, frame_type=frame_type, mtime=path.stat().st_mtime, aliases=aliases
    )


def _classify_header_only(path: Path) -> ProcessedEvidence | None:
    """Classify a file the image reader refused, from its first image header alone."""
    from astropy.io import fits

    try:
        with fits.open(path, lazy_load_hdus=True) as hdul:
            for hdu in hdul:
                naxis = int(hdu.header.get("NAXIS", 0))
                if naxis >= 2:
                    shape = tuple(int(hdu.header.get(f"NAXIS{i}", 1)) for i in range(naxis, 0, -1))
                    return processed.classify(hdu.header, shape)
    except (OSError, ValueError, TypeError):
        return None
    return None
