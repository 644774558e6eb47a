"""Keeping the web process near its idle size on a small computer.

glibc gives each thread that allocates its own heap ("arena"), keeps freed pages in it, and after
the first large block is freed serves later large blocks from the heap too; a server that once
sent a large page would stay at its largest size. Two arenas are enough for a handful of threads,
large blocks get pages of their own, and free pages are handed back after large work. Elsewhere
(musl, macOS) these are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
MMAP_FROM = 256 * 1024
"""Blocks this large (a page of HTML, a chunk of JSON) get pages of their own, returned when freed.
Set once, it also stops glibc from raising the limit after the first large block is freed (which
would keep every later one in the heap)."""
TRIM_FROM = 1024 * 1024
"""Free memory at the top of the heap beyond this goes back to the system at once."""


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # glibc only  # noqa: B018
    except (OSError, AttributeError, TypeError):
        return None
    return libc


_LIBC = _libc()


def tune_heap(arenas: int = ARENAS) -> None:
    """Call before the server starts its threads: later threads share these arenas."""
    if _LIBC is not None:
        _LIBC.mallopt(M_ARENA_MAX, arenas)
        _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_FROM)
        _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_FROM)


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (after a large answer was built)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)

