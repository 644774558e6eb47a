"""Atomic FITS writing and checked FITS reading shared by capture, stacking and the library.

A file is written under a temporary name in the same directory, fsynced, renamed, and the
directory fsynced, so a crash leaves either the old state or the complete file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from astropy.io import fits

from agent.errors import CorruptFile


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
    """Read the first image HDU; a file that is not valid FITS raises `CorruptFile`."""
    try:
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                if hdu.data is not None and hdu.is_image:
                    return np.asarray(hdu.data), hdu.header.copy()
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptFile(f"{path}: not a readable FITS file ({exc}); re-capture or remove it") from exc
    raise CorruptFile(f"{path}: FITS file holds no image; re-capture or remove it")
