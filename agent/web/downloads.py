"""Downloads by id only, of files the library knows: raw and calibrated lights, masters, and a
zip of a night or a target streamed as it is written (no path from a request reaches the disk)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse

from agent.library.queries import files
from agent.web import answers
from agent.web.site import NotFound, Site, numeric_id

KINDS = ("raw", "calibrated", "master")
CHUNK = 1 << 16


def register(app: FastAPI, site: Site) -> None:
    @app.get("/download/{kind}/{ident}", include_in_schema=False)
    def download(kind: str, ident: str) -> Response:
        if kind not in KINDS:
            raise NotFound("not found")
        lib = site.need_library()
        path = files.known_file(lib, kind, numeric_id(ident))
        if path is None:
            raise NotFound("not found")
        return file_response(path)

    @app.get("/download/zip", include_in_schema=False)
    def download_zip(night: str = "", target: str = "") -> Response:
        if not night and not target:
            raise NotFound("name a night or a target")
        lib = site.need_library()
        found = files.light_files(lib, answers.lights_index(site), night or None, target or None)
        if not found:
            raise NotFound("no lights for that night or target")
        name = "lights-" + "-".join(slug(p) for p in (night, target) if p) + ".zip"
        return StreamingResponse(zip_stream(found), media_type="application/zip",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60]


def file_response(path: Path) -> Response:
    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK):
                yield block

    return StreamingResponse(chunks(), media_type="application/fits", headers={
        "Content-Disposition": f'attachment; filename="{slug(path.name)}"',
        "Content-Length": str(path.stat().st_size),
    })  # fmt: skip


class _ZipBuffer(io.RawIOBase):
    """A write-only sink that hands out what zipfile wrote so far (streamed zips)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.chunks.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def zip_stream(found: list[tuple[str, Path]]) -> Iterator[bytes]:
    sink = _ZipBuffer()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, path in found:
            with open(path, "rb") as src, zf.open(name, "w", force_zip64=True) as dst:
                while block := src.read(CHUNK):
                    dst.write(block)
                    yield sink.take()
    yield sink.take()
