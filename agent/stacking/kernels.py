"""Numba kernels of the stacking engine (private; `combine.py` is the public API).

Every pixel's stack is gathered from a row band of all frames, decoded from its stored integer
form (FITS big-endian 16-bit, BZERO) and normalised in one multiply-add, sorted once, and then
clipped by shrinking a window [lo, hi) over the sorted values.  Window statistics come from
prefix sums of (x - ref) and (x - ref)^2 (ref = the middle value, so the sums do not cancel),
so each clipping pass costs O(1) plus the walk of the window edges.  Linear-fit clipping can
reject values inside the sorted run, so it compacts the run instead.

The kernels run with the GIL released (`nogil`) so the next band can be read meanwhile.
fastmath is off: NaN handling (dropped values) must stay exact.
"""

from __future__ import annotations

import math

import numba
import numpy as np

NONE = 0
PERCENTILE = 1
SIGMA = 2
MAD = 3
AVGSIGMA = 4
WINSORIZED = 5
LINEARFIT = 6
GESD = 7

METHOD_CODES = {
    "none": NONE,
    "percentile": PERCENTILE,
    "sigma": SIGMA,
    "mad": MAD,
    "avgsigma": AVGSIGMA,
    "winsorized": WINSORIZED,
    "linearfit": LINEARFIT,
    "gesd": GESD,
}

WINSOR_CLAMP = 1.5
WINSOR_CORRECTION = 1.134  # restores the std of a Gaussian clamped at +-1.5 sigma
WINSOR_TOLERANCE = 5e-4
WINSOR_MAX_ITER = 1000  # the iteration is monotone; this only guards against float oscillation
MAD_TO_SIGMA = 1.4826

_INSERTION_MAX = 32
_SHELL_GAPS = np.array([1750, 701, 301, 132, 57, 23, 10, 4, 1], dtype=np.int64)


@numba.njit(inline="always", nogil=True, cache=True)
def _sort_pairs(v: np.ndarray, idx: np.ndarray, k: int) -> None:  # pragma: no cover - compiled
    """Sort v[:k] ascending, carrying the frame index along (insertion, or Shell sort for big stacks)."""
    if k <= _INSERTION_MAX:
        for i in range(1, k):
            x = v[i]
            j = idx[i]
            p = i - 1
            while p >= 0 and v[p] > x:
                v[p + 1] = v[p]
                idx[p + 1] = idx[p]
                p -= 1
            v[p + 1] = x
            idx[p + 1] = j
        return
    for gap in _SHELL_GAPS:
        if gap >= k:
            continue
        for i in range(gap, k):
            x = v[i]
            j = idx[i]
            p = i
            while p >= gap and v[p - gap] > x:
                v[p] = v[p - gap]
                idx[p] = idx[p - gap]
                p -= gap
            v[p] = x
            idx[p] = j


@numba.njit(inline="always", nogil=True, cache=True)
def _median(v: np.ndarray, lo: int, hi: int) -> float:  # pragma: no cover - compiled
    """Median of the sorted window v[lo:hi] (mean of the two middle values when even)."""
    n = hi - lo
    h = lo + n // 2
    if n % 2 == 1:
        return v[h]
    return 0.5 * (v[h - 1] + v[h])


@numba.njit(inline="always", nogil=True, cache=True)
def _std(p1: np.ndarray, p2: np.ndarray, lo: int, hi: int) -> float:  # pragma: no cover - compiled
    """Sample standard deviation (n - 1) of the window from the prefix sums."""
    n = hi - lo
    s1 = p1[hi] - p1[lo]
    s2 = p2[hi] - p2[lo]
    var = (s2 - s1 * s1 / n) / (n - 1)
    return math.sqrt(var) if var > 0.0 else 0.0


@numba.njit(nogil=True, cache=True)
def _mad(v: np.ndarray, lo: int, hi: int, m: float) -> float:  # pragma: no cover - compiled
    """Median absolute deviation of the sorted window around m, by merging both sides outwards."""
    n = hi - lo
    right = lo + n // 2  # first index whose value is >= m
    while right > lo and v[right - 1] >= m:
        right -= 1
    while right < hi and v[right] < m:
        right += 1
    left = right - 1
    want = n // 2  # 0-based order statistic(s) of the deviations
    prev = 0.0
    cur = 0.0
    for t in range(want + 1):
        dl = m - v[left] if left >= lo else np.inf
        dr = v[right] - m if right < hi else np.inf
        prev = cur
        if dl <= dr:
            cur = dl
            left -= 1
        else:
            cur = dr
            right += 1
        if t == want:
            break
    if n % 2 == 1:
        return cur
    return 0.5 * (prev + cur)


@numba.njit(nogil=True, cache=True)
def _clip_window(
    v: np.ndarray, lo: int, hi: int, low_bound: float, high_bound: float
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Walk the window edges past values strictly outside [low_bound, high_bound]."""
    nlo = lo
    while nlo < hi and v[nlo] < low_bound:
        nlo += 1
    nhi = hi
    while nhi > nlo and v[nhi - 1] > high_bound:
        nhi -= 1
    return nlo, nhi


@numba.njit(nogil=True, cache=True)
def _reject_window(
    method: int,
    v: np.ndarray,
    k: int,
    p1: np.ndarray,
    p2: np.ndarray,
    kl: float,
    kh: float,
    crit: np.ndarray,
    side: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Rejection by shrinking a window over the sorted stack v[:k]; returns the kept window.

    A pass that would leave no value is not applied (only reachable with thresholds below 1).
    """
    lo = 0
    hi = k
    if method == NONE or k < 3:
        return lo, hi

    if method == PERCENTILE:
        # one pass: reject (m - x) > pl*m or (x - m) > ph*m, m = median of all; no rejection if m <= 0
        m = _median(v, 0, k)
        if m <= 0.0:
            return lo, hi
        nlo, nhi = _clip_window(v, lo, hi, m - kl * m, m + kh * m)
        if nhi > nlo:
            return nlo, nhi
        return lo, hi

    # prefix sums of the shifted values
    ref = v[k // 2]
    p1[0] = 0.0
    p2[0] = 0.0
    for i in range(k):
        d = v[i] - ref
        p1[i + 1] = p1[i] + d
        p2[i + 1] = p2[i] + d * d

    if method == GESD:
        # generalized ESD (Rosner 1983): remove the most extreme value (about the mean, in units of the
        # sample std) r = floor(fraction * n) times; the outliers are the first j removed, j the largest
        # i with R_i > lambda_i.  Ties between the ends remove the low end, as Siril does.
        r = int(math.floor(kl * k))
        if r > crit.shape[1] - 1:
            r = crit.shape[1] - 1
        best = 0
        clo = lo
        chi = hi
        for i in range(1, r + 1):
            n = chi - clo
            if n < 3:
                break
            mean = ref + (p1[chi] - p1[clo]) / n
            sd = _std(p1, p2, clo, chi)
            dlow = mean - v[clo]
            dhigh = v[chi - 1] - mean
            if dhigh > dlow:
                stat = dhigh / sd if sd > 0.0 else 0.0
                chi -= 1
                side[i] = 1
            else:
                stat = dlow / sd if sd > 0.0 else 0.0
                clo += 1
                side[i] = -1
            if stat > crit[k, i]:
                best = i
        for i in range(1, best + 1):
            if side[i] > 0:
                hi -= 1
            else:
                lo += 1
        return lo, hi

    s_k = 0.0
    if method == AVGSIGMA:
        # PixInsight averaged sigma: s_k = sqrt(sum (x - m0)^2 / (m0 (n - 1))), m0 = median(all), fixed
        m0 = _median(v, 0, k)
        if m0 <= 0.0:
            return lo, hi
        d = m0 - ref
        ss = p2[k] - 2.0 * d * p1[k] + k * d * d
        s_k = math.sqrt(max(ss, 0.0) / (m0 * (k - 1)))

    while hi - lo >= 3:
        m = _median(v, lo, hi)
        if method == SIGMA:
            s = _std(p1, p2, lo, hi)
        elif method == MAD:
            s = MAD_TO_SIGMA * _mad(v, lo, hi, m)
        elif method == AVGSIGMA:
            if m <= 0.0:
                break
            s = s_k * math.sqrt(m)
        else:  # WINSORIZED, Siril's definition
            n = hi - lo
            s = _std(p1, p2, lo, hi)
            # w is clamped in place, so the effective clamp only ever narrows
            a_eff = -np.inf
            b_eff = np.inf
            na = 0
            nb = 0
            for _ in range(WINSOR_MAX_ITER):
                a_eff = max(a_eff, m - WINSOR_CLAMP * s)
                b_eff = min(b_eff, m + WINSOR_CLAMP * s)
                while na < n and v[lo + na] < a_eff:
                    na += 1
                while nb < n - na and v[hi - 1 - nb] > b_eff:
                    nb += 1
                a = a_eff - ref
                b = b_eff - ref
                s1 = na * a + nb * b + (p1[hi - nb] - p1[lo + na])
                s2 = na * a * a + nb * b * b + (p2[hi - nb] - p2[lo + na])
                var = (s2 - s1 * s1 / n) / (n - 1)
                s0 = s
                s = WINSOR_CORRECTION * (math.sqrt(var) if var > 0.0 else 0.0)
                if abs(s - s0) <= WINSOR_TOLERANCE * s0:
                    break
        nlo, nhi = _clip_window(v, lo, hi, m - kl * s, m + kh * s)
        if (nlo == lo and nhi == hi) or nhi <= nlo:
            break
        lo = nlo
        hi = nhi
    return lo, hi


@numba.njit(nogil=True, cache=True)
def _reject_linearfit(
    v: np.ndarray, idx: np.ndarray, k: int, kl: float, kh: float, frame_rej: np.ndarray
) -> tuple[int, int, int]:  # pragma: no cover - compiled
    """Linear-fit clipping on the sorted stack; compacts kept values into v[:n].

    Repeat while at least 5 values remain: fit y = a + b*i (i = 0..n-1) by least squares,
    s = mean |residual|, reject (fit - x) > kl*s (low) or (x - fit) > kh*s (high).
    Returns (n kept, n rejected low, n rejected high).
    """
    n = k
    nlow = 0
    nhigh = 0
    if k < 5:
        return n, nlow, nhigh
    ref = v[k // 2]
    while n >= 5:
        si = 0.5 * n * (n - 1)
        sii = (n - 1) * n * (2.0 * n - 1) / 6.0
        sy = 0.0
        siy = 0.0
        for i in range(n):
            y = v[i] - ref
            sy += y
            siy += i * y
        b = (n * siy - si * sy) / (n * sii - si * si)
        a = (sy - b * si) / n
        s = 0.0
        for i in range(n):
            s += abs((v[i] - ref) - (a + b * i))
        s /= n
        kept = 0
        for i in range(n):
            res = (v[i] - ref) - (a + b * i)
            if not (-res > kl * s or res > kh * s):
                kept += 1
        if kept == n or kept == 0:
            break
        out = 0
        for i in range(n):
            res = (v[i] - ref) - (a + b * i)
            if -res > kl * s:
                frame_rej[idx[i], 0] += 1
                nlow += 1
            elif res > kh * s:
                frame_rej[idx[i], 1] += 1
                nhigh += 1
            else:
                v[out] = v[i]
                idx[out] = idx[i]
                out += 1
        n = out
    return n, nlow, nhigh


@numba.njit(nogil=True, cache=True)
def _finish_pixel(
    method: int,
    v: np.ndarray,
    idx: np.ndarray,
    k: int,
    p1: np.ndarray,
    p2: np.ndarray,
    side: np.ndarray,
    kl: float,
    kh: float,
    crit: np.ndarray,
    use_median: bool,
    frame_rej: np.ndarray,
) -> tuple[float, int, int]:  # pragma: no cover - compiled
    """Sort, reject and combine one pixel's k valid values; returns (value, n low, n high)."""
    if k == 0:
        return np.nan, 0, 0
    _sort_pairs(v, idx, k)
    if method == LINEARFIT:
        hi, nlow, nhigh = _reject_linearfit(v, idx, k, kl, kh, frame_rej)
        lo = 0
    else:
        lo, hi = _reject_window(method, v, k, p1, p2, kl, kh, crit, side)
        nlow = lo
        nhigh = k - hi
        for i in range(lo):
            frame_rej[idx[i], 0] += 1
        for i in range(hi, k):
            frame_rej[idx[i], 1] += 1
    if use_median:
        return _median(v, lo, hi), nlow, nhigh
    total = 0.0
    for i in range(lo, hi):
        total += v[i]
    return total / (hi - lo), nlow, nhigh


@numba.njit(parallel=True, nogil=True, cache=True)
def stack_band_u16(
    band: np.ndarray,
    swap: np.ndarray,
    signed: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
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
    """Stack a (frames, rows, cols) band of 16-bit words.

    Each word of frame f is byte-swapped when swap[f] (FITS is big-endian), read as two's complement
    when signed[f], then value = word * gain[f] + offset[f] (BSCALE/BZERO and normalisation folded).
    """
    n_frames, rows, cols = band.shape
    for r in numba.prange(rows):
        v = np.empty(n_frames, np.float64)
        idx = np.empty(n_frames, np.int32)
        p1 = np.empty(n_frames + 1, np.float64)
        p2 = np.empty(n_frames + 1, np.float64)
        side = np.zeros(n_frames + 1, np.int8)
        fr = frame_rej[r]
        for c in range(cols):
            for f in range(n_frames):
                w = np.int64(band[f, r, c])
                if swap[f]:
                    w = ((w & 0xFF) << 8) | (w >> 8)
                if signed[f] and w >= 32768:
                    w -= 65536
                v[f] = w * gain[f] + offset[f]
                idx[f] = f
            val, nl, nh = _finish_pixel(method, v, idx, n_frames, p1, p2, side, kl, kh, crit, use_median, fr)
            out[r, c] = val
            rej_low[r, c] = nl
            rej_high[r, c] = nh


@numba.njit(parallel=True, nogil=True, cache=True)
def stack_band_float(
    band: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
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
    """Stack a native-endian float band; NaNs (blank pixels) are dropped from each stack."""
    n_frames, rows, cols = band.shape
    for r in numba.prange(rows):
        v = np.empty(n_frames, np.float64)
        idx = np.empty(n_frames, np.int32)
        p1 = np.empty(n_frames + 1, np.float64)
        p2 = np.empty(n_frames + 1, np.float64)
        side = np.zeros(n_frames + 1, np.int8)
        fr = frame_rej[r]
        for c in range(cols):
            k = 0
            for f in range(n_frames):
                x = np.float64(band[f, r, c])
                if x == x:
                    v[k] = x * gain[f] + offset[f]
                    idx[k] = f
                    k += 1
            val, nl, nh = _finish_pixel(method, v, idx, k, p1, p2, side, kl, kh, crit, use_median, fr)
            out[r, c] = val
            rej_low[r, c] = nl
            rej_high[r, c] = nh
