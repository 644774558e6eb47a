"""Atomic FITS writing and checked FITS reading shared by capture, stacking and the library.

A file is written under a temporary name in the same directory, fsynced, renamed, and the
directory fsynced, so a crash leaves either the old state or the complete file. Its mode is
0666 less the user's umask, as if it had been created directly.

Reading is in one place (`locate_image`, `read_image`, `read_header`) so the stacker, light
calibration and the library accept the same files: the image in the primary HDU or in an
extension (the primary empty, often holding the keywords), tile-compressed (`.fits.fz`) or
gzipped (`.fits.gz`); integer BLANK pixels and NaN/inf are masked (NaN) and counted. Every
reason a file cannot be used is one `UnreadableImage` with a one-line message naming the file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from agent.errors import CorruptFile
from agent.umask import process_umask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success fsync it, rename it over `path`, fsync the folder.

    On any error the temporary file is removed and `path` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".part", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~process_umask())  # mkstemp makes 0600; the user's umask decides
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_parts(target: Path) -> int:
    """Remove partial files a killed writer left for `target` (`.NAME.PID.XXXX.part`, the PID dead).

    The next write of the same file cleans up after the one that was killed mid-write; a part
    whose writer is still alive (another process writing the same file) is left alone.
    """
    removed = 0
    prefix = f".{target.name}."
    for part in target.parent.glob(f"{glob_escape(prefix)}*.part"):
        pid_text = part.name[len(prefix) :].split(".", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            part.unlink()
            removed += 1
    return removed


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_hdul_atomic(path: str | os.PathLike[str], hdul: fits.HDUList) -> Path:
    with atomic_output(path) as fh:
        hdul.writeto(fh)
    return Path(path)


def write_fits_atomic(path: str | os.PathLike[str], data: np.ndarray, header: fits.Header | None = None) -> Path:
    return write_hdul_atomic(path, fits.HDUList([fits.PrimaryHDU(data=data, header=header)]))


def read_fits(path: str | os.PathLike[str]) -> tuple[np.ndarray, fits.Header]:
    """The frame's pixels (masked ones NaN) and header: `read_image` for callers wanting a pair."""
    image = read_image(path)
    return image.data, image.header


# --- reading -----------------------------------------------------------------------------

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fits.gz", ".fit.gz")
"""File names the library ingests and the docs list: plain, tile-compressed (fpack) and gzipped FITS."""

_STORED_DTYPE = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_UNSIGNED_BZERO = {16: (32768, np.uint16), 32: (2**31, np.uint32), 64: (2**63, np.uint64)}
_STRUCTURAL = {
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "BZERO", "BSCALE", "BLANK",
    "EXTNAME", "EXTVER", "EXTLEVEL", "INHERIT", "CHECKSUM", "DATASUM", "GROUPS", "",
}  # fmt: skip


class UnreadableImage(CorruptFile):
    """A file's image cannot be used: not FITS, truncated, no image, a cube where a frame is
    wanted, or every pixel masked. The message is one line naming the file and the fix."""


@dataclass(frozen=True)
class ImageLayout:
    """Where a file's image is and how its pixels are stored, found without reading them."""

    path: str
    hdu: int  # index of the image HDU
    header: fits.Header  # the image HDU's header with the primary's keywords merged in
    shape: tuple[int, ...]  # numpy order: (rows, cols), or (planes, rows, cols) for a cube
    bitpix: int
    bzero: float
    bscale: float
    blank: int | None  # stored value of masked pixels (integer images only)
    data_offset: int | None  # byte offset of the stored pixels; None when compressed (tiles, gzip)

    @property
    def stored_dtype(self) -> np.dtype:
        return np.dtype(_STORED_DTYPE[self.bitpix])


@dataclass
class Image:
    """A file's pixels as values (masked pixels NaN), its header and how many pixels were masked."""

    data: np.ndarray
    header: fits.Header
    masked: int
    path: str
    hdu: int


def is_fits_name(name: str) -> bool:
    """A FITS file by its name (any case); hidden files (partial writes) are not."""
    return not name.startswith(".") and name.lower().endswith(FITS_SUFFIXES)


def find_image_hdu(hdul: fits.HDUList) -> int:
    """Index of the first HDU holding an image (primary, IMAGE extension or tile-compressed)."""
    for i, hdu in enumerate(hdul):
        if not hdu.is_image:
            continue
        naxis = int(hdu.header.get("NAXIS", 0))
        if naxis > 0 and all(int(hdu.header.get(f"NAXIS{k}", 0)) > 0 for k in range(1, naxis + 1)):
            return i
    raise UnreadableImage(f"{hdul.filename() or 'FITS data'}: holds no image HDU; re-capture or remove it")


@contextlib.contextmanager
def _opened(path: str) -> Iterator[fits.HDUList]:
    """The file opened for reading raw stored values; any failure becomes one UnreadableImage line."""
    try:
        # astropy warns of a truncated file on stderr (twice, through its logger); the reader says it once
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            with fits.open(path, memmap=False, lazy_load_hdus=True, do_not_scale_image_data=True) as hdul:
                yield hdul
    except UnreadableImage:
        raise
    except FileNotFoundError as exc:
        raise UnreadableImage(f"{path}: no such file; check the path") from exc
    except IsADirectoryError as exc:
        raise UnreadableImage(f"{path}: is a folder, not a FITS file; give the files in it") from exc
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnreadableImage(f"{path}: not a readable FITS file ({reason}); re-capture or remove it") from exc


def _merged_header(hdul: fits.HDUList, index: int) -> fits.Header:
    """The image HDU's header as a primary header, with the primary's keywords it lacks (programs
    that write the image to an extension often leave INSTRUME, EXPTIME... in the empty primary)."""
    image = hdul[index].header
    out = image.copy()
    for key in ("XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "EXTVER", "EXTLEVEL", "INHERIT", "CHECKSUM", "DATASUM"):
        out.remove(key, ignore_missing=True, remove_all=True)
    if index == 0:
        return out
    for card in hdul[0].header.cards:
        key = card.keyword
        if key in _STRUCTURAL or key.startswith("NAXIS"):
            continue
        if key in ("COMMENT", "HISTORY") or key not in out:
            out.append(card)
    return out


def locate_image(path: str | os.PathLike[str], *, allow_cube: bool = False) -> ImageLayout:
    """Find the image of a FITS file and its layout, reading headers only.

    A third axis of length 1 is dropped; a real cube (colour, a stack) is refused unless
    `allow_cube`, and so is anything else but a 2-D image.
    """
    name = str(path)
    with _opened(name) as hdul:
        index = find_image_hdu(hdul)
        hdu = hdul[index]
        header = _merged_header(hdul, index)
        info = hdul.fileinfo(index)
        compressed = isinstance(hdu, fits.CompImageHDU) or (
            info is None or getattr(info.get("file"), "compression", None) is not None
        )
        offset = None if compressed or info is None else int(info["datLoc"])
    naxis = int(header["NAXIS"])
    axes = [int(header[f"NAXIS{k}"]) for k in range(naxis, 0, -1)]  # numpy order
    while len(axes) > 2 and axes[0] == 1:
        axes.pop(0)
    where = f" (HDU {index})" if index else ""
    if len(axes) < 2:
        raise UnreadableImage(f"{name}: image{where} has one axis; a frame needs two")
    if len(axes) > 3 or (len(axes) == 3 and not allow_cube):
        raise UnreadableImage(
            f"{name}: image{where} is a {'x'.join(map(str, reversed(axes)))} cube (NAXIS={naxis}); "
            "only 2-D frames (mono or undebayered CFA) are read here: split it into frames first"
        )
    bitpix = int(header["BITPIX"])
    if bitpix not in _STORED_DTYPE:
        raise UnreadableImage(f"{name}: BITPIX={bitpix} is not a FITS image type; re-capture or remove it")
    blank = header.get("BLANK") if bitpix > 0 else None
    layout = ImageLayout(
        path=name,
        hdu=index,
        header=header,
        shape=tuple(axes),
        bitpix=bitpix,
        bzero=float(header.get("BZERO", 0.0)),
        bscale=float(header.get("BSCALE", 1.0)),
        blank=int(blank) if isinstance(blank, int | np.integer) else None,
        data_offset=offset,
    )
    if offset is not None:
        size = int(np.prod(axes)) * abs(bitpix) // 8
        if os.path.getsize(name) < offset + size:
            raise UnreadableImage(f"{name}: file ends inside the image data; re-capture or remove it")
    return layout


def read_header(path: str | os.PathLike[str]) -> fits.Header:
    """The header of a file's image, merged with the primary's keywords (pixels are not read)."""
    return locate_image(path, allow_cube=True).header


def read_stored(layout: ImageLayout) -> np.ndarray:
    """The image's stored values (before BZERO/BSCALE, big-endian as in the file), decompressed."""
    with _opened(layout.path) as hdul:
        try:
            raw = hdul[layout.hdu].data
        except (OSError, ValueError, TypeError, EOFError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UnreadableImage(
                f"{layout.path}: image data cannot be read ({reason}); re-capture or remove it"
            ) from exc
        if raw is None:
            raise UnreadableImage(f"{layout.path}: image HDU holds no data; re-capture or remove it")
        stored = np.asarray(raw).astype(layout.stored_dtype, copy=False)
    return stored.reshape(layout.shape)


def masked_mask(stored: np.ndarray, layout: ImageLayout) -> np.ndarray | None:
    """Where the stored pixels are masked (BLANK, NaN, inf); None when none is."""
    if layout.bitpix > 0:
        if layout.blank is None:
            return None
        mask = stored == layout.blank
    else:
        mask = ~np.isfinite(stored)
    return mask if mask.any() else None


def decode(stored: np.ndarray, layout: ImageLayout) -> tuple[np.ndarray, int]:
    """Physical values of stored pixels and the masked count: integers stay integers (uint16 for
    BZERO 32768) unless a pixel is masked, then the image is float with NaN there."""
    mask = masked_mask(stored, layout)
    bitpix, bzero, bscale = layout.bitpix, layout.bzero, layout.bscale
    native = stored.astype(stored.dtype.newbyteorder("="))  # a copy: NaN may be written into it
    data: np.ndarray
    if bitpix < 0:
        data = native if (bzero, bscale) == (0.0, 1.0) else native * bscale + bzero
    elif (bzero, bscale) == (0.0, 1.0):
        data = native
    elif bscale == 1.0 and bitpix in _UNSIGNED_BZERO and bzero == _UNSIGNED_BZERO[bitpix][0]:
        offset, unsigned = _UNSIGNED_BZERO[bitpix]
        data = native.view(unsigned) ^ unsigned(offset)  # stored + 2**(n-1), without overflow
    else:
        data = np.multiply(native, bscale, dtype=np.float32 if bitpix <= 16 else np.float64) + bzero
    if mask is None:
        return data, 0
    if data.dtype.kind != "f":
        data = data.astype(np.float32 if bitpix <= 16 else np.float64)
    data[mask] = np.nan
    return data, int(np.count_nonzero(mask))


def read_image(path: str | os.PathLike[str], *, allow_cube: bool = False) -> Image:
    """A file's image as values, masked pixels NaN; a file with every pixel masked is refused."""
    layout = locate_image(path, allow_cube=allow_cube)
    data, masked = decode(read_stored(layout), layout)
    if masked == data.size:
        raise UnreadableImage(
            f"{layout.path}: every pixel is masked (BLANK, NaN or infinite): there is nothing to stack or calibrate; remove the file"
        )
    header = layout.header.copy()
    if data.dtype.kind == "f" and layout.bitpix > 0:
        header.remove("BLANK", ignore_missing=True)  # masked pixels are NaN now: BLANK would mislead
    return Image(data, header, masked, layout.path, layout.hdu)
