"""Numba kernels of the stacking engine (private; `combine.py` is the public API).

Every pixel's stack is gathered from a row band of all frames, decoded from its stored integer
form (FITS big-endian 16-bit, BZERO) and normalised in one multiply-add, then sorted once: a
block of columns at a time goes through a Batcher odd-even merge network whose compare-exchange
steps run over the whole block, so the sort is branch-free and vectorised across pixels.  Each
pixel is then clipped by shrinking a window [lo, hi) over the sorted values.  Window statistics come from
prefix sums of (x - ref) and (x - ref)^2 (ref = the middle value, so the sums do not cancel),
so each clipping pass costs O(1) plus the walk of the window edges.  Linear-fit clipping can
reject values inside the sorted run, so it compacts the run instead.

The kernels run with the GIL released (`nogil`) so the next band can be read meanwhile.
fastmath is off: NaN handling (dropped values) must stay exact.
"""

from __future__ import annotations

import functools
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
def _sd(s1: float, s2: float, n: int) -> float:  # pragma: no cover - compiled
    """Sample standard deviation (n - 1) from the sums of shifted values and of their squares."""
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
def _reject_linearfit(
    scratch: np.ndarray, k: int, kl: float, kh: float
) -> tuple[int, int]:  # pragma: no cover
    """Linear-fit clipping of the sorted stack v[:k].

    Repeat while at least 5 values remain: fit y = a + b*i (i = 0..n-1) by least squares,
    s = mean |residual|, reject (fit - x) > kl*s (low) or (x - fit) > kh*s (high).  Rejections
    can fall inside the sorted run, so the kept run is compacted; at the end v[:k] is rewritten
    as [rejected low | kept | rejected high], all sorted, and the kept window is returned.
    scratch rows: 0 the values v, 3 and 4 the rejected low and high values (one array argument:
    each array passed to a call costs reference counting).
    """
    v = scratch[0]
    rl = scratch[3]
    rh = scratch[4]
    n = k
    nlow = 0
    nhigh = 0
    if k < 5:
        return 0, k
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
                rl[nlow] = v[i]
                nlow += 1
            elif res > kh * s:
                rh[nhigh] = v[i]
                nhigh += 1
            else:
                v[out] = v[i]
                out += 1
        n = out
    if nlow == 0 and nhigh == 0:
        return 0, k
    for i in range(n - 1, -1, -1):
        v[nlow + i] = v[i]
    for arr, cnt in ((rl, nlow), (rh, nhigh)):
        for i in range(1, cnt):  # few values: insertion sort, no allocation
            x = arr[i]
            j = i - 1
            while j >= 0 and arr[j] > x:
                arr[j + 1] = arr[j]
                j -= 1
            arr[j + 1] = x
    for i in range(nlow):
        v[i] = rl[i]
    for i in range(nhigh):
        v[nlow + n + i] = rh[i]
    return nlow, nlow + n


@numba.njit(nogil=True, cache=True)
def _solve_block(
    t: np.ndarray,
    kcount: np.ndarray,
    m: int,
    method: int,
    kl: float,
    kh: float,
    crit: np.ndarray,
    use_median: bool,
    vals: np.ndarray,
    lo_out: np.ndarray,
    hi_out: np.ndarray,
    scratch: np.ndarray,
    side: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Reject and combine each column c < m of a block t (frames x columns) sorted per column.

    The first kcount[c] values of a column are its valid stack.  The kept window [lo, hi) goes to
    lo_out/hi_out and the combined value to vals; rejected values stay sorted in [0, lo) (low) and
    [hi, k) (high) of the column (linear fit rewrites the column in that order).
    The per-pixel code is written out in this one function: helper calls taking arrays cost more
    than the arithmetic here.  A pass that would reject every value is not applied.
    """
    v = scratch[0]
    p1 = scratch[1]
    p2 = scratch[2]
    for c in range(m):
        k = kcount[c]
        for f in range(k):
            v[f] = t[f, c]
        lo = 0
        hi = k
        if k == 0:
            vals[c] = np.nan
            lo_out[c] = 0
            hi_out[c] = 0
            continue
        if k < 3 or method == NONE:
            pass
        elif method == LINEARFIT:
            lo, hi = _reject_linearfit(scratch, k, kl, kh)
            if lo > 0 or hi < k:
                for f in range(k):
                    t[f, c] = v[f]
        elif method == PERCENTILE:
            # one pass: reject (m - x) > pl*m or (x - m) > ph*m, m = median of all; none if m <= 0
            h = k // 2
            med = v[h] if k % 2 == 1 else 0.5 * (v[h - 1] + v[h])
            if med > 0.0:
                nlo = 0
                while nlo < k and med - v[nlo] > kl * med:
                    nlo += 1
                nhi = k
                while nhi > nlo and v[nhi - 1] - med > kh * med:
                    nhi -= 1
                if nhi > nlo:
                    lo = nlo
                    hi = nhi
        else:
            # prefix sums of values shifted by the middle one (no cancellation in the variance)
            ref = v[k // 2]
            a1 = 0.0
            a2 = 0.0
            p1[0] = 0.0
            p2[0] = 0.0
            for i in range(k):
                d = v[i] - ref
                a1 += d
                a2 += d * d
                p1[i + 1] = a1
                p2[i + 1] = a2
            if method == GESD:
                # generalized ESD (Rosner 1983): remove the value farthest from the mean (in sample
                # std units) r = floor(fraction * n) times; the outliers are the first j removed, j the
                # largest i with R_i > lambda_i.  Equal distances remove the low end, as Siril does.
                r = min(int(math.floor(kl * k)), crit.shape[1] - 1)
                best = 0
                clo = 0
                chi = k
                for i in range(1, r + 1):
                    nn = chi - clo
                    if nn < 3:
                        break
                    s1 = p1[chi] - p1[clo]
                    mean = ref + s1 / nn
                    sd = _sd(s1, p2[chi] - p2[clo], nn)
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
            else:
                s_k = 0.0
                skip = False
                if method == AVGSIGMA:
                    # PixInsight averaged sigma: s_k = sqrt(sum (x - m0)^2 / (m0 (n - 1))), m0 = median(all)
                    h = k // 2
                    m0 = v[h] if k % 2 == 1 else 0.5 * (v[h - 1] + v[h])
                    if m0 <= 0.0:
                        skip = True
                    else:
                        d = m0 - ref
                        ss = p2[k] - 2.0 * d * p1[k] + k * d * d
                        s_k = math.sqrt(max(ss, 0.0) / (m0 * (k - 1)))
                while not skip and hi - lo >= 3:
                    nn = hi - lo
                    h = lo + nn // 2
                    med = v[h] if nn % 2 == 1 else 0.5 * (v[h - 1] + v[h])
                    if method == SIGMA:
                        s = _sd(p1[hi] - p1[lo], p2[hi] - p2[lo], nn)
                    elif method == MAD:
                        s = MAD_TO_SIGMA * _mad(v, lo, hi, med)
                    elif method == AVGSIGMA:
                        if med <= 0.0:
                            break
                        s = s_k * math.sqrt(med)
                    else:
                        # WINSORIZED, Siril's definition.  w is clamped in place there, so the
                        # effective clamp is [m - 1.5 s_min, m + 1.5 s_min] over the passes so far.
                        s = _sd(p1[hi] - p1[lo], p2[hi] - p2[lo], nn)
                        inv_n = 1.0 / nn
                        inv_n1 = 1.0 / (nn - 1)
                        a_eff = -np.inf
                        b_eff = np.inf
                        na = 0
                        nb = 0
                        for _ in range(WINSOR_MAX_ITER):
                            a_eff = max(a_eff, med - WINSOR_CLAMP * s)
                            b_eff = min(b_eff, med + WINSOR_CLAMP * s)
                            while na < nn and v[lo + na] < a_eff:
                                na += 1
                            while nb < nn - na and v[hi - 1 - nb] > b_eff:
                                nb += 1
                            a = a_eff - ref
                            b = b_eff - ref
                            s1 = na * a + nb * b + (p1[hi - nb] - p1[lo + na])
                            s2 = na * a * a + nb * b * b + (p2[hi - nb] - p2[lo + na])
                            s0 = s
                            var = (s2 - s1 * s1 * inv_n) * inv_n1
                            s = WINSOR_CORRECTION * math.sqrt(var) if var > 0.0 else 0.0
                            if abs(s - s0) <= WINSOR_TOLERANCE * s0:
                                break
                    low_bound = med - kl * s
                    high_bound = med + kh * s
                    nlo = lo
                    while nlo < hi and v[nlo] < low_bound:
                        nlo += 1
                    nhi = hi
                    while nhi > nlo and v[nhi - 1] > high_bound:
                        nhi -= 1
                    if (nlo == lo and nhi == hi) or nhi <= nlo:
                        break
                    lo = nlo
                    hi = nhi
        if use_median:
            nn = hi - lo
            h = lo + nn // 2
            vals[c] = v[h] if nn % 2 == 1 else 0.5 * (v[h - 1] + v[h])
        else:
            total = 0.0
            for i in range(lo, hi):
                total += v[i]
            vals[c] = total / (hi - lo)
        lo_out[c] = lo
        hi_out[c] = hi


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
            _solve_block(t, kcount, m, method, kl, kh, crit, use_median, vals, lo_b, hi_b, scratch, side)
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
            _solve_block(t, kcount, m, method, kl, kh, crit, use_median, vals, lo_b, hi_b, scratch, side)
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
