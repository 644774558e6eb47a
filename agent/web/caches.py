"""Answers kept between requests, few and small, so the web process stays near its idle size.

The library's largest questions (what is needed, every light) take a second or more with tens of
thousands of frames. Each answer is computed once per library change (the database's and WAL's
stamps) however many pages ask at the same moment, and an answer that was slow to compute keeps
being served while its successor is computed in the background: no page waits for it twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.library.queries.readonly import ReadOnlyLibrary, library_stamp
from agent.web.memory import release_free_memory
from agent.web.preview import encode, read_preview

log = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_SECONDS = 30.0
"""By default an answer is recomputed at least this often: ages and expiries move on without the
library changing. Answers that do not depend on the time say so (`max_age=None`)."""
SLOW_SECONDS = 0.15
"""An answer that took longer than this is refreshed in the background while the old one is served."""
STALE_SECONDS = 600.0
"""The oldest answer ever served while its successor is being computed."""
ANSWERS = 24
"""Answers kept (least recently asked for dropped first); the reports of many nights stay bounded."""


@dataclass(frozen=True)
class _Answer:
    stamp: tuple[int, ...]
    made: float  # monotonic
    seconds: float  # how long computing it took
    value: Any


class AnswerCache:
    """Answers by name, valid until the library changes or for their `max_age` in seconds.

    `compute` receives the computing thread's own read-only library (from `library`, which
    raises when there is none): a background refresh never shares a connection with a request.
    """

    def __init__(self, root: Path, library: Callable[[], ReadOnlyLibrary], size: int = ANSWERS) -> None:
        self.root = root
        self.library = library
        self.size = size
        self.lock = threading.Lock()
        self.items: OrderedDict[str, _Answer] = OrderedDict()
        self.flights: dict[str, threading.Event] = {}
        self.refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-answers")

    def get(self, name: str, compute: Callable[[ReadOnlyLibrary], T], max_age: float | None = CACHE_SECONDS) -> T:
        while True:
            stamp = library_stamp(self.root)
            now = time.monotonic()
            with self.lock:
                hit = self.items.get(name)
                if hit is not None:
                    self.items.move_to_end(name)
                    if hit.stamp == stamp and (max_age is None or now - hit.made < max_age):
                        return hit.value
                    if hit.seconds >= SLOW_SECONDS and now - hit.made < STALE_SECONDS:
                        if name not in self.flights:
                            self.flights[name] = threading.Event()
                            self.refresher.submit(self._refresh, name, compute)
                        return hit.value
                flight = self.flights.get(name)
                if flight is None:
                    self.flights[name] = threading.Event()
                    break
            flight.wait()  # someone else is computing it: take theirs if it is current
        try:
            return self._compute(name, compute)
        finally:
            self._land(name)

    def prefetch(self, name: str, compute: Callable[[ReadOnlyLibrary], Any]) -> None:
        """Compute an answer in the background now, unless it is known or on its way."""
        with self.lock:
            if name in self.items or name in self.flights:
                return
            self.flights[name] = threading.Event()
        self.refresher.submit(self._refresh, name, compute)

    def _compute(self, name: str, compute: Callable[[ReadOnlyLibrary], T]) -> T:
        stamp = library_stamp(self.root)  # before: a change while computing makes it stale at once
        lib = self.library()  # this thread's; raises when there is no library
        started = time.monotonic()
        value = compute(lib)
        seconds = time.monotonic() - started
        with self.lock:
            self.items[name] = _Answer(stamp, time.monotonic(), seconds, value)
            self.items.move_to_end(name)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        if seconds >= SLOW_SECONDS:
            release_free_memory()
        return value

    def _refresh(self, name: str, compute: Callable[[ReadOnlyLibrary], Any]) -> None:
        try:
            self._compute(name, compute)
        except Exception:  # the old answer stays; the next request tries again
            log.exception("refreshing %s", name)
        finally:
            self._land(name)

    def _land(self, name: str) -> None:
        with self.lock:
            flight = self.flights.pop(name, None)
        if flight is not None:
            flight.set()


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
