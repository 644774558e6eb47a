"""Gates at the door: a calibration frame that fails its type's check is quarantined, never stacked.

Cheap by design (a regular sample of the pixels, read through a memory map), because every
calibration frame passes here: a dark or bias that saw light or saturated, a bias with signal, a
flat that is under- or over-exposed. Lights pass untouched: their checks come at calibration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent.library.headers import FrameInfo
from agent.library.keys import FrameType

if TYPE_CHECKING:
    import numpy as np

SAMPLE_STEP = 8  # every 8th row and column: 1/64 of the pixels, enough for a median

DARK_MAX_FRACTION = 0.25
"""A dark or dark flat whose median is above this share of full scale saw light (or is saturated)."""

BIAS_MAX_FRACTION = 0.10
"""A bias is the offset pedestal only; a median above this share of full scale has signal in it."""

FLAT_LEVEL = (0.10, 0.90)
"""A flat's median must lie within this share of full scale: below it the noise dominates, above it
the sensor's response is no longer linear."""

OFF_SET_POINT_C = 2.0
"""A sensor further than this from its cooler's set-point is flagged: the frame is keyed by the
temperature it had, never by the one it asked for."""


def _sample(path: Path) -> tuple[np.ndarray, float] | None:
    """A regular sample of the image's pixels (as `agent.fitsfile` finds and decodes them: the
    image in an extension, compressed, BLANK and NaN left out) and the data's full scale; None if
    unreadable. A plain file is sampled through a memory map, so only the sampled rows are read."""
    import numpy as np

    from agent.errors import CorruptFile
    from agent.fitsfile import decode, locate_image, read_stored

    try:
        layout = locate_image(path)
        if layout.data_offset is None:  # tiles or gzip: decompressed whole, then sampled
            stored = read_stored(layout)[::SAMPLE_STEP, ::SAMPLE_STEP]
        else:
            mapped = np.memmap(path, dtype=layout.stored_dtype, mode="r", offset=layout.data_offset, shape=layout.shape)
            stored = np.array(mapped[::SAMPLE_STEP, ::SAMPLE_STEP])
            del mapped
        values, _ = decode(stored, layout)
    except (CorruptFile, OSError, ValueError):
        return None
    data = np.asarray(values, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return None
    full = 65535.0 if layout.bitpix > 0 or float(finite.max()) > 1.0 else 1.0
    return finite, full


def gate(path: Path, info: FrameInfo) -> str | None:
    """Why this calibration frame must not be stacked, or None when it may."""
    import numpy as np

    if info.frame_type is FrameType.LIGHT:
        return None
    sample = _sample(path)
    if sample is None:
        return None  # the header was readable; the stacker reports unreadable pixels itself
    data, full = sample
    median = float(np.median(data))
    share = median / full
    kind = info.frame_type.value
    if info.frame_type in (FrameType.DARK, FrameType.DARKFLAT) and share > DARK_MAX_FRACTION:
        what = "saturated" if share > 0.95 else "light-leaked"
        return (
            f"{what} {kind}: median {median:.0f} ADU ({100 * share:.0f} % of full scale); "
            "cover the telescope and camera and take it again"
        )
    if info.frame_type is FrameType.BIAS and share > BIAS_MAX_FRACTION:
        return (
            f"bias with signal: median {median:.0f} ADU ({100 * share:.0f} % of full scale); "
            "a bias is the shortest exposure in the dark"
        )
    if info.frame_type is FrameType.FLAT and not FLAT_LEVEL[0] <= share <= FLAT_LEVEL[1]:
        return (
            f"flat out of level: median {100 * share:.1f} % of full scale, outside "
            f"{100 * FLAT_LEVEL[0]:.0f}-{100 * FLAT_LEVEL[1]:.0f} %; adjust the panel or the exposure"
        )
    return None


def off_set_point(info: FrameInfo) -> str | None:
    """A note when the sensor was far from its set-point while the frame was taken."""
    if info.set_temp is None or info.ccd_temp is None:
        return None
    if abs(info.ccd_temp - info.set_temp) <= OFF_SET_POINT_C:
        return None
    return f"off set-point: sensor {info.ccd_temp:+.1f} °C, set-point {info.set_temp:+.1f} °C"
