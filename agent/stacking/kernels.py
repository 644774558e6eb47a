"""Numba band kernels of the stacking engine (private; `combine.py` is the public API).

Every pixel's stack is gathered from a row band of all frames, decoded from its stored integer
form (FITS big-endian 16-bit, BZERO) and normalised in one multiply-add, then sorted once: a
block of columns at a time goes through a Batcher odd-even merge network whose compare-exchange
steps run over the whole block, so the sort is branch-free and vectorised across pixels.  Each
pixel's sorted stack is then clipped and combined by `rejection.solve_block`, and its rejected
values are credited to the frames they came from.

The kernels run with the GIL released (`nogil`) so the next band can be read meanwhile.
fastmath is off: NaN handling (dropped values) must stay exact.  Their numba cache holds the
rejection code compiled in but is checked against this file only: see `rejection.py`.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from agent.stacking.rejection import solve_block

REJECTION_DIGEST = "8b6bc979c4e0b800"
"""sha256 (16 hex) of rejection.py. numba's cache checks only this file, yet the band kernels carry
the rejection code compiled in: a test fails until this is updated after rejection.py changes, and
updating it changes this file, which drops the stale cached kernels."""

BLOCK_COLS = 128  # columns sorted together; (frames x 128) float64 stays in L1/L2


@functools.lru_cache(maxsize=64)
def sort_network(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Comparator pairs (a < b) of Batcher's odd-even merge sort for n inputs.

    Built for the next power of two and pruned of comparators touching padding: padding would hold
    +inf, which never moves, so the pruned network sorts any n exactly.
    """
    n_pad = 1
    while n_pad < n:
        n_pad *= 2
    pairs: list[tuple[int, int]] = []
    p = 1
    while p < n_pad:
        k = p
        while k >= 1:
            for j in range(k % p, n_pad - k, 2 * k):
                for i in range(min(k, n_pad - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    kept = [(a, b) for a, b in pairs if b < n]
    a = np.array([q[0] for q in kept], dtype=np.int64)
    b = np.array([q[1] for q in kept], dtype=np.int64)
    return a, b


@numba.njit(inline="always", nogil=True, cache=True)
def _network(t: np.ndarray, pa: np.ndarray, pb: np.ndarray, m: int) -> None:  # pragma: no cover
    """Apply the compare-exchange network to columns [0, m) of t (one row per frame)."""
    for q in range(pa.size):
        ti = t[pa[q]]
        tj = t[pb[q]]
        for c in range(m):
            x = ti[c]
            y = tj[c]
            ti[c] = min(x, y)
            tj[c] = max(x, y)


@numba.njit(inline="always", nogil=True, cache=True)
def _attribute(
    x: float, f: int, v: np.ndarray, lo: int, hi: int, k: int, used: np.ndarray, frame_rej: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Credit frame f with a rejection if its value x is one of the rejected values not yet credited.

    Equal values are indistinguishable, so ties go to the first frames holding them.
    """
    if lo > 0 and x <= v[lo - 1]:
        for i in range(lo):
            if used[i] == 0 and v[i] == x:
                used[i] = 1
                frame_rej[f, 0] += 1
                return
    if hi < k and x >= v[hi]:
        for i in range(hi, k):
            if used[i] == 0 and v[i] == x:
                used[i] = 1
                frame_rej[f, 1] += 1
                return


@numba.njit(parallel=True, nogil=True, cache=True)
def stack_band_u16(
    band: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
    pa: np.ndarray,
    pb: np.ndarray,
    method: int,
    kl: float,
    kh: float,
    crit: np.ndarray,
    use_median: bool,
    out: np.ndarray,
    rej_low: np.ndarray,
    rej_high: np.ndarray,
    frame_rej: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Stack a (frames, rows, cols) band of raw FITS 16-bit words (big-endian two's complement).

    Each word is decoded branch-free to u = stored + 32768 (byte swap, flip the sign bit), then
    value = u * gain[f] + offset[f], with BSCALE/BZERO and normalisation folded into gain/offset.
    """
    n, rows, cols = band.shape
    for r in numba.prange(rows):
        t = np.empty((n, BLOCK_COLS), np.float64)
        kcount = np.full(BLOCK_COLS, n, np.int64)
        vals = np.empty(BLOCK_COLS, np.float64)
        lo_b = np.empty(BLOCK_COLS, np.int64)
        hi_b = np.empty(BLOCK_COLS, np.int64)
        scratch = np.empty((5, n + 1), np.float64)
        side = np.zeros(n + 1, np.int8)
        acc = np.empty((1, BLOCK_COLS), np.float64)
        used = np.zeros(n, np.int8)
        fr = frame_rej[r]
        for c0 in range(0, cols, BLOCK_COLS):
            m = min(BLOCK_COLS, cols - c0)
            for f in range(n):
                g = gain[f]
                o = offset[f]
                row = band[f, r]
                tf = t[f]
                for c in range(m):
                    w = np.uint32(row[c0 + c])
                    u = (((w & 0xFF) << 8) | (w >> 8)) ^ 0x8000
                    tf[c] = u * g + o
            _network(t, pa, pb, m)
            solve_block(t, kcount, m, method, kl, kh, crit, use_median, vals, lo_b, hi_b, scratch, side, acc)
            for c in range(m):
                lo = lo_b[c]
                hi = hi_b[c]
                out[r, c0 + c] = vals[c]
                rej_low[r, c0 + c] = lo
                rej_high[r, c0 + c] = n - hi
                if lo > 0 or hi < n:
                    used[:] = 0
                    col = t[:, c]
                    for f in range(n):
                        w = np.uint32(band[f, r, c0 + c])
                        u = (((w & 0xFF) << 8) | (w >> 8)) ^ 0x8000
                        _attribute(u * gain[f] + offset[f], f, col, lo, hi, n, used, fr)


@numba.njit(parallel=True, nogil=True, cache=True)
def stack_band_float(
    band: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
    pa: np.ndarray,
    pb: np.ndarray,
    method: int,
    kl: float,
    kh: float,
    crit: np.ndarray,
    use_median: bool,
    out: np.ndarray,
    rej_low: np.ndarray,
    rej_high: np.ndarray,
    frame_rej: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Stack a native-endian float band; non-finite values (NaN blanks) are dropped from each stack.

    Dropped values are sorted to the end as +inf, so the first k sorted values are the valid ones.
    """
    n, rows, cols = band.shape
    for r in numba.prange(rows):
        t = np.empty((n, BLOCK_COLS), np.float64)
        kcount = np.empty(BLOCK_COLS, np.int64)
        vals = np.empty(BLOCK_COLS, np.float64)
        lo_b = np.empty(BLOCK_COLS, np.int64)
        hi_b = np.empty(BLOCK_COLS, np.int64)
        scratch = np.empty((5, n + 1), np.float64)
        side = np.zeros(n + 1, np.int8)
        acc = np.empty((1, BLOCK_COLS), np.float64)
        used = np.zeros(n, np.int8)
        fr = frame_rej[r]
        for c0 in range(0, cols, BLOCK_COLS):
            m = min(BLOCK_COLS, cols - c0)
            kcount[:m] = 0
            for f in range(n):
                g = gain[f]
                o = offset[f]
                row = band[f, r]
                tf = t[f]
                for c in range(m):
                    x = np.float64(row[c0 + c]) * g + o
                    if math.isfinite(x):
                        tf[c] = x
                        kcount[c] += 1
                    else:
                        tf[c] = np.inf
            _network(t, pa, pb, m)
            solve_block(t, kcount, m, method, kl, kh, crit, use_median, vals, lo_b, hi_b, scratch, side, acc)
            for c in range(m):
                k = kcount[c]
                lo = lo_b[c]
                hi = hi_b[c]
                out[r, c0 + c] = vals[c]
                rej_low[r, c0 + c] = lo
                rej_high[r, c0 + c] = k - hi
                if lo > 0 or hi < k:
                    used[:] = 0
                    col = t[:, c]
                    for f in range(n):
                        x = np.float64(band[f, r, c0 + c]) * gain[f] + offset[f]
                        if math.isfinite(x):
                            _attribute(x, f, col, lo, hi, k, used, fr)


__all__ = ["BLOCK_COLS", "sort_network", "stack_band_float", "stack_band_u16"]
