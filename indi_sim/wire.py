"""What the driver writes to indiserver: whole XML messages on stdout, and images as FITS bytes."""

from __future__ import annotations

import asyncio
import io
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

BLOB_LINE_CHARS = 72


class MessageWriter:
    """Writes one whole XML message to stdout, then the next.

    indipydriver's own writer yields between BLOB chunks (another message can land inside the
    BLOB) and writes through a buffered stdout on a socket its reader made non-blocking. Here
    each message is written completely with os.write, waiting while the socket is full. BLOB
    base64 is broken into 72-character lines: indiserver 1.9.9 intermittently stops forwarding
    a driver's output after a BLOB sent as one very long line.
    """

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._lock = asyncio.Lock()

    async def write(self, xmldata: ET.Element) -> None:
        if getattr(xmldata, "tag", None) == "setBLOBVector":
            for one in xmldata.iter("oneBLOB"):
                text = one.text or ""
                one.text = "\n".join(text[i : i + BLOB_LINE_CHARS] for i in range(0, len(text), BLOB_LINE_CHARS))
        data = ET.tostring(xmldata) + b"\n"
        async with self._lock:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self.fd, view):]
                except BlockingIOError:
                    await asyncio.sleep(0.002)


def fits_bytes(data: np.ndarray, cards: list[tuple[str, object, str]]) -> bytes:
    """One FITS file in memory: the frame and its header cards (key, value, comment)."""
    from astropy.io import fits

    hdu = fits.PrimaryHDU(data=data)
    for key, value, comment in cards:
        hdu.header[key] = (value, comment)
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


@dataclass(frozen=True)
class EncodedImage:
    """An image as the driver sends it: the bytes, their INDI format and the uncompressed size."""

    data: bytes
    fmt: str
    size: int


def encode_image(data: np.ndarray, cards: list[tuple[str, object, str]], native: bool, compressed: bool) -> EncodedImage:
    """The BLOB indiccd.cpp would send: FITS, or the raw pixel buffer with native transfer; fpack'd
    (`.fits.fz`, Rice) or zlib'd (`.raw.z`) when CCD_COMPRESSION is on."""
    if native:
        raw = np.ascontiguousarray(data).tobytes()
        if compressed:
            import zlib

            return EncodedImage(zlib.compress(raw, 1), ".raw.z", len(raw))
        return EncodedImage(raw, ".raw", len(raw))
    plain = fits_bytes(data, cards)
    if not compressed:
        return EncodedImage(plain, ".fits", len(plain))
    from astropy.io import fits

    comp = fits.CompImageHDU(data=data, compression_type="RICE_1")
    for key, value, comment in cards:
        comp.header[key] = (value, comment)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), comp]).writeto(buf)
    return EncodedImage(buf.getvalue(), ".fits.fz", len(plain))
