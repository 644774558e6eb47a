"""Frame sources for streaming: FITS files read a row band at a time, or in-memory arrays.

A FITS image's data is one contiguous big-endian block at a known offset, so a row band is a
single `os.preadv` into a preallocated buffer: the page cache is copied once, nothing is mapped
(mapped pages would count in the process RSS and defeat the memory bound), and 16-bit words stay
as stored integers until the kernel decodes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from agent.errors import CorruptFile, FrameMismatch, ObsAgentError


class UnsupportedFrame(ObsAgentError):
    """A frame's layout (colour cube, odd BITPIX) cannot be stacked."""


_BITPIX_DTYPE = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


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
    array: np.ndarray | None = None

    @property
    def label(self) -> str:
        return self.path if self.path is not None else "<array>"

    @property
    def depth(self) -> str:
        """Bit depth as a user reads it: uint16, int16, float32..."""
        if self.bitpix == 16 and self.bzero == 32768 and self.bscale == 1:
            return "uint16"
        return {8: "uint8", 16: "int16", 32: "int32", 64: "int64", -32: "float32", -64: "float64"}[
            self.bitpix
        ]

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
    """Parse the primary image header and locate its data block; checks the file is complete."""
    name = str(path)
    try:
        with fits.open(name, memmap=False, lazy_load_hdus=True) as hdul:
            header = hdul[0].header.copy()
            info = hdul.fileinfo(0)
            offset = int(info["datLoc"]) if info is not None else -1
    except FileNotFoundError as exc:
        raise CorruptFile(f"{name}: no such file; check the path") from exc
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise CorruptFile(f"{name}: not a readable FITS file ({exc}); re-capture or remove it") from exc
    naxis = int(header.get("NAXIS", 0))
    if naxis != 2:
        if naxis == 3 and int(header.get("NAXIS3", 1)) == 1:
            pass
        else:
            raise UnsupportedFrame(
                f"{name}: primary HDU has NAXIS={naxis}; only 2-D (mono or undebayered CFA) frames can be stacked"
            )
    bitpix = int(header["BITPIX"])
    if bitpix not in _BITPIX_DTYPE:
        raise UnsupportedFrame(f"{name}: BITPIX={bitpix} is not a FITS image type")
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    size = shape[0] * shape[1] * abs(bitpix) // 8
    if offset < 0 or os.path.getsize(name) < offset + size:
        raise CorruptFile(f"{name}: file ends inside the image data; re-capture or remove it")
    return FrameSource(
        path=name,
        shape=shape,
        bitpix=bitpix,
        bzero=float(header.get("BZERO", 0.0)),
        bscale=float(header.get("BSCALE", 1.0)),
        xbin=_int_or_none(header.get("XBINNING")),
        ybin=_int_or_none(header.get("YBINNING")),
        header=header,
        data_offset=offset,
    )


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


def source_of(item: str | os.PathLike[str] | np.ndarray) -> FrameSource:
    if isinstance(item, np.ndarray):
        return from_array(item)
    if isinstance(item, str | os.PathLike):
        return open_fits(Path(item))
    raise TypeError(f"cannot stack a {type(item).__name__}; give FITS paths or 2-D arrays")
