"""Frame sources for streaming: FITS files read a row band at a time, or in-memory arrays.

A FITS image's data is one contiguous big-endian block at a known offset, so a row band is a
single `os.preadv` into a preallocated buffer: the page cache is copied once, nothing is mapped
(mapped pages would count in the process RSS and defeat the memory bound), and 16-bit words stay
as stored integers until the kernel decodes them.

Files are found and checked by the one FITS reader (`agent.fitsfile`): the image may be in an
extension HDU. A compressed file (`.fits.fz`, `.fits.gz`) has no such block: its stored words are
decompressed into memory once. A frame with masked pixels (integer BLANK, NaN, inf) is held in
memory as floats with NaN there, which the float kernel leaves out of each pixel's stack.
Our own products (masters, calibrated lights: ADU / ADUSCALE, `products.py`) are decoded back to
ADU, so stacking calibrated lights works in the same units as raw frames.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from agent.errors import CorruptFile, FrameMismatch
from agent.fitsfile import ImageLayout, UnreadableImage, decode, locate_image, masked_mask, read_stored
from agent.stacking.products import adu_header, adu_scale

log = logging.getLogger(__name__)

UnsupportedFrame = UnreadableImage
"""A frame that cannot be stacked (a colour cube, an odd BITPIX): the reader's one error class."""

_BITPIX_DTYPE = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_DEPTHS = {8: "uint8", 16: "int16", 32: "int32", 64: "int64", -32: "float32", -64: "float64"}
_SCAN_BYTES = 16 * 2**20  # rows read at a time when counting masked pixels
_MASKED: dict[tuple[str, int, int], int] = {}  # (path, size, mtime) -> masked pixels, once per process


@dataclass
class FrameSource:
    """One input frame: where its pixels are and how to decode them."""

    path: str | None
    shape: tuple[int, int]  # (rows, cols)
    bitpix: int  # FITS BITPIX (arrays: the equivalent)
    bzero: float
    bscale: float
    xbin: int | None
    ybin: int | None
    header: fits.Header
    data_offset: int = 0
    array: np.ndarray | None = None  # values (arrays given to stack, frames with masked pixels)
    raw: np.ndarray | None = None  # stored big-endian words of a compressed file, decompressed
    masked: int = 0  # pixels masked in the file (BLANK, NaN, inf): NaN in `array`
    file_depth: str | None = None  # the file's bit depth when `array` holds its values as floats

    @property
    def label(self) -> str:
        return self.path if self.path is not None else "<array>"

    @property
    def depth(self) -> str:
        """Bit depth as a user reads it: uint16, int16, float32..."""
        if self.file_depth is not None:
            return self.file_depth
        if self.bitpix == 16 and self.bzero == 32768 and self.bscale == 1:
            return "uint16"
        return _DEPTHS[self.bitpix]

    @property
    def stored_dtype(self) -> np.dtype:
        if self.array is not None:
            return self.array.dtype
        return np.dtype(_BITPIX_DTYPE[self.bitpix])

    def read_rows(self, start: int, stop: int, out: np.ndarray) -> None:
        """Fill `out` (shape (stop-start, cols), dtype `stored_dtype` but native/raw) with rows."""
        if self.array is not None:
            out[...] = self.array[start:stop]
            return
        assert self.path is not None
        cols = self.shape[1]
        itemsize = self.stored_dtype.itemsize
        want = (stop - start) * cols * itemsize
        if self.raw is not None:  # the same bytes a plain file holds, already decompressed
            out.reshape(-1).view(np.uint8)[:want] = self.raw[start:stop].reshape(-1).view(np.uint8)
            return
        view = memoryview(out.reshape(-1).view(np.uint8).data)[:want]
        fd = os.open(self.path, os.O_RDONLY)
        try:
            got = 0
            pos = self.data_offset + start * cols * itemsize
            while got < want:
                n = os.preadv(fd, [view[got:]], pos + got)
                if n <= 0:
                    raise CorruptFile(
                        f"{self.path}: file ends inside the image data; re-capture or remove it"
                    )
                got += n
        finally:
            os.close(fd)


def open_fits(path: str | os.PathLike[str]) -> FrameSource:
    """Locate a file's 2-D image (primary or extension HDU) and check it can be stacked.

    Plain files are read in bands at the image's data offset; compressed ones are decompressed
    into memory; masked pixels are counted (once per file and process) and become NaN.
    """
    layout = locate_image(path)
    scale = adu_scale(layout.header)  # our products store ADU / ADUSCALE: decoded back to ADU
    header = adu_header(layout.header)
    source = FrameSource(
        path=layout.path,
        shape=(layout.shape[0], layout.shape[1]),
        bitpix=layout.bitpix,
        bzero=layout.bzero * scale,
        bscale=layout.bscale * scale,
        xbin=_int_or_none(header.get("XBINNING")),
        ybin=_int_or_none(header.get("YBINNING")),
        header=header,
        data_offset=layout.data_offset or 0,
    )
    if layout.data_offset is None:
        source.raw = read_stored(layout)
    masked = _masked_pixels(source, layout)
    if masked == 0:
        return source
    if masked == source.shape[0] * source.shape[1]:
        raise UnreadableImage(
            f"{layout.path}: every pixel is masked (BLANK, NaN or infinite): there is nothing to stack or calibrate; remove the file"
        )
    values, _ = decode(source.raw if source.raw is not None else read_stored(layout), layout)
    values = values.astype(np.float64 if values.dtype.itemsize > 4 else np.float32, copy=False)
    if scale != 1.0:
        values = values * values.dtype.type(scale)
    return FrameSource(
        path=source.path,
        shape=source.shape,
        bitpix=-64 if values.dtype == np.float64 else -32,
        bzero=0.0,
        bscale=1.0,
        xbin=source.xbin,
        ybin=source.ybin,
        header=header,
        array=values,
        masked=masked,
        file_depth=source.depth,
    )


def _masked_pixels(source: FrameSource, layout: ImageLayout) -> int:
    """Pixels the file masks (integer BLANK, NaN, inf), counted in bands; a warning names them once."""
    key = _file_key(layout.path)
    if key in _MASKED:
        return _MASKED[key]
    if layout.bitpix > 0 and layout.blank is None:
        _MASKED[key] = 0  # nothing can be masked: the common camera frame is not read twice
        return 0
    rows, cols = source.shape
    step = max(1, _SCAN_BYTES // (cols * source.stored_dtype.itemsize))
    buffer = np.empty((min(step, rows), cols), source.stored_dtype)
    count = 0
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        band = buffer[: r1 - r0]
        source.read_rows(r0, r1, band)
        mask = masked_mask(band, layout)
        count += 0 if mask is None else int(np.count_nonzero(mask))
    if len(_MASKED) > 4096:
        _MASKED.clear()
    _MASKED[key] = count
    if 0 < count < rows * cols:  # a frame with every pixel masked is refused by the caller
        log.warning(
            "%s: %d of %d pixels masked (BLANK, NaN or inf); they are left out of the stack",
            layout.path, count, rows * cols,
        )
    return count


def masked_count(path: str | os.PathLike[str]) -> int | None:
    """Masked pixels of a file opened for stacking in this process (None if it was not)."""
    try:
        return _MASKED.get(_file_key(path))
    except OSError:
        return None


def _file_key(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def from_array(array: np.ndarray) -> FrameSource:
    """Wrap an in-memory 2-D frame (any real dtype) as a source."""
    a = np.asarray(array)
    if a.ndim != 2:
        raise UnsupportedFrame(f"array frame has shape {a.shape}; only 2-D frames can be stacked")
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian):
        a = a.astype(a.dtype.newbyteorder("="))
    bitpix = {
        np.dtype(np.uint8): 8,
        np.dtype(np.int16): 16,
        np.dtype(np.uint16): 16,
        np.dtype(np.int32): 32,
        np.dtype(np.int64): 64,
        np.dtype(np.float32): -32,
        np.dtype(np.float64): -64,
    }.get(np.dtype(a.dtype.str.replace(">", "<")))
    if bitpix is None:
        a = a.astype(np.float64)
        bitpix = -64
    bzero = 32768.0 if a.dtype == np.uint16 else 0.0
    return FrameSource(None, (a.shape[0], a.shape[1]), bitpix, bzero, 1.0, None, None, fits.Header(), array=a)


def check_consistent(frames: list[FrameSource]) -> None:
    """Refuse a set of frames that disagree in size, bit depth or binning, naming the odd one."""
    ref = frames[0]
    for fr in frames[1:]:
        if fr.shape != ref.shape:
            raise FrameMismatch(
                f"{fr.label}: size {fr.shape[1]}x{fr.shape[0]} differs from {ref.label} "
                f"({ref.shape[1]}x{ref.shape[0]}); stack only frames of one camera mode"
            )
        if fr.depth != ref.depth:
            raise FrameMismatch(
                f"{fr.label}: bit depth {fr.depth} differs from {ref.label} ({ref.depth}); "
                "stack only frames of one camera mode"
            )
        if (fr.xbin, fr.ybin) != (ref.xbin, ref.ybin):
            raise FrameMismatch(
                f"{fr.label}: binning {fr.xbin}x{fr.ybin} differs from {ref.label} ({ref.xbin}x{ref.ybin}); "
                "stack only frames of one binning"
            )


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def source_of(item: str | os.PathLike[str] | np.ndarray | FrameSource) -> FrameSource:
    if isinstance(item, FrameSource):
        return item
    if isinstance(item, np.ndarray):
        return from_array(item)
    if isinstance(item, str | os.PathLike):
        return open_fits(Path(item))
    raise TypeError(f"cannot stack a {type(item).__name__}; give FITS paths or 2-D arrays")
