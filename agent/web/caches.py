"""Answers kept between requests, few and small, so the web process stays near its idle size."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from agent.library.queries.readonly import library_stamp
from agent.web.preview import encode, read_preview

T = TypeVar("T")
CACHE_SECONDS = 30.0


class AnswerCache:
    """Answers valid until the library changes (its files' stamps) or for CACHE_SECONDS."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.items: dict[str, tuple[tuple[int, ...], float, Any]] = {}

    def get(self, name: str, compute: Callable[[], T]) -> T:
        stamp = library_stamp(self.root)
        with self.lock:
            hit = self.items.get(name)
            if hit is not None and hit[0] == stamp and time.monotonic() - hit[1] < CACHE_SECONDS:
                return hit[2]
        value = compute()
        with self.lock:
            self.items[name] = (stamp, time.monotonic(), value)
        return value


class PreviewCache:
    """Encoded previews by (path, mtime): a page reload does not re-read the FITS file."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.items: dict[tuple[str, int, str], tuple[bytes, dict[str, float]]] = {}

    def get(self, path: Path, fmt: str) -> tuple[bytes, dict[str, float]]:
        key = (str(path), path.stat().st_mtime_ns, fmt)
        with self.lock:
            if key in self.items:
                return self.items[key]
        preview = read_preview(path)
        value = (encode(preview, fmt), preview.stats)
        with self.lock:
            if len(self.items) >= self.size:
                self.items.pop(next(iter(self.items)))
            self.items[key] = value
        return value
