"""Stretched previews of FITS frames, read with the standard library only.

The web process stays small by not importing numpy and astropy for a thumbnail: the primary
image is read row by row at a stride, stretched with a midtones transfer (median to a quarter
grey, black point below the noise), and encoded by Pillow.
"""

from __future__ import annotations

import array
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

BLOCK = 2880
_TYPECODES = {8: "B", 16: "h", 32: "i", -32: "f", -64: "d"}


class PreviewError(Exception):
    """The file is not a FITS image we can preview."""


@dataclass(frozen=True)
class Preview:
    width: int
    height: int
    pixels: bytes  # 8-bit grey, row-major
    stats: dict[str, float]


def _header(fh: BinaryIO) -> tuple[dict[str, str], int]:
    cards: dict[str, str] = {}
    offset = 0
    for _ in range(1000):
        block = fh.read(BLOCK)
        if len(block) < BLOCK:
            raise PreviewError("truncated FITS header")
        offset += BLOCK
        for i in range(0, BLOCK, 80):
            card = block[i : i + 80].decode("ascii", "replace")
            name = card[:8].strip()
            if name == "END":
                return cards, offset
            if card[8:10] == "= ":
                cards[name] = card[10:].split("/")[0].strip().strip("'").strip()
    raise PreviewError("FITS header without END")


def read_preview(path: str | Path, max_side: int = 640) -> Preview:
    with open(path, "rb") as fh:
        cards, data_start = _header(fh)
        try:
            bitpix = int(cards["BITPIX"])
            naxis = int(cards.get("NAXIS", "0"))
            width, height = int(cards.get("NAXIS1", "0")), int(cards.get("NAXIS2", "1"))
            bzero = float(cards.get("BZERO", "0"))
            bscale = float(cards.get("BSCALE", "1"))
        except (KeyError, ValueError) as exc:
            raise PreviewError(f"unreadable FITS keywords ({exc})") from exc
        if naxis < 2 or width <= 0 or height <= 0 or bitpix not in _TYPECODES:
            raise PreviewError("the primary HDU holds no 2-D image")
        code = _TYPECODES[bitpix]
        size = abs(bitpix) // 8
        step = max(1, math.ceil(max(width, height) / max_side))
        values: list[float] = []
        out_w = len(range(0, width, step))
        rows = range(0, height, step)
        for y in rows:
            fh.seek(data_start + y * width * size)
            row = array.array(code)
            row.frombytes(fh.read(width * size))
            if len(row) < width:
                raise PreviewError("truncated FITS data")
            if sys.byteorder == "little" and size > 1:
                row.byteswap()
            values.extend(row[::step])
    if bscale != 1.0 or bzero != 0.0:
        values = [v * bscale + bzero for v in values]
    return _stretch(values, out_w, len(rows))


def _stretch(values: list[float], width: int, height: int) -> Preview:
    finite = sorted(v for v in values if not math.isnan(v) and not math.isinf(v))
    if not finite:
        return Preview(width, height, bytes(width * height), {})
    n = len(finite)
    lo, hi = finite[0], finite[-1]
    median = finite[n // 2]
    mad = sorted(abs(v - median) for v in finite[:: max(1, n // 20000)])
    sigma = 1.4826 * mad[len(mad) // 2]
    span = (hi - lo) or 1.0
    # Auto screen stretch: black point 2.8 sigma below the median, median mapped to 0.25.
    c0 = max(0.0, (median - lo) / span - 2.8 * sigma / span)
    m_norm = (median - lo) / span - c0
    target = 0.25
    mid = _mtf(target, m_norm) if 0 < m_norm < 1 else 0.5
    scale = 1.0 / (1.0 - c0) if c0 < 1 else 1.0
    out = bytearray(width * height)
    for i, v in enumerate(values[: width * height]):
        if v != v:
            continue
        x = ((v - lo) / span - c0) * scale
        if x <= 0:
            continue
        if x >= 1:
            out[i] = 255
            continue
        out[i] = int(255 * _mtf(mid, x))
    mean = sum(finite) / n
    stats = {"min": lo, "max": hi, "median": median, "mean": mean, "sigma": sigma}
    return Preview(width, height, bytes(out), stats)


def _mtf(m: float, x: float) -> float:
    """The midtones transfer function: maps m to 0.5; (used inverted to pick m for a target)."""
    den = (2 * m - 1) * x - m
    return 0.0 if den == 0 else (m - 1) * x / den


def encode(preview: Preview, fmt: str = "PNG") -> bytes:
    from PIL import Image

    # FITS rows run bottom-up; people look at frames the way capture programs show them.
    image = Image.frombytes("L", (preview.width, preview.height), preview.pixels).transpose(
        Image.Transpose.FLIP_TOP_BOTTOM
    )
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.save(buf, format="JPEG", quality=85)
    else:
        image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
