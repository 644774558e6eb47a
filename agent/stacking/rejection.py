"""Rejection of one pixel's sorted stack and combination of what is kept (numba, private).

Each pixel is clipped by shrinking a window [lo, hi) over its sorted values.  Window statistics
come from prefix sums of (x - ref) and (x - ref)^2 (ref = the middle value, so the sums do not
cancel), so each clipping pass costs O(1) plus the walk of the window edges.  Linear-fit clipping
can reject values inside the sorted run, so it compacts the run instead.

fastmath is off: NaN handling (dropped values) must stay exact.  The band kernels in `kernels.py`
carry this code compiled into their numba cache, and numba checks only the file a cached function
is defined in: after editing this file, update `kernels.REJECTION_DIGEST` (tests/test_stack_methods.py
says to), which changes kernels.py and so drops the stale cached kernels.
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
def solve_block(
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
    acc: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Reject and combine each column c < m of a block t (frames x columns) sorted per column.

    The first kcount[c] values of a column are its valid stack.  The kept window [lo, hi) goes to
    lo_out/hi_out and the combined value to vals; rejected values stay sorted in [0, lo) (low) and
    [hi, k) (high) of the column (linear fit rewrites the column in that order).
    The per-pixel code is written out in this one function: helper calls taking arrays cost more
    than the arithmetic here.  A pass that would reject every value is not applied.
    The means of the kept values are computed for the whole block at once, row by row of t (the
    same additions in the same order, so the same results): across columns they vectorise, where
    one pixel's running sum is a chain of dependent additions.  acc: (1, block) scratch.
    """
    v = scratch[0]
    p1 = scratch[1]
    p2 = scratch[2]
    total_c = acc[0]
    kmax = 0
    for c in range(m):
        kmax = max(kmax, kcount[c])
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
        lo_out[c] = lo
        hi_out[c] = hi
    if not use_median:
        # t holds each column's values in v's order (linear fit wrote its reordering back);
        # adding +0.0 outside [lo, hi) leaves a sum that starts at +0.0 unchanged
        for c in range(m):
            total_c[c] = 0.0
        for i in range(kmax):
            for c in range(m):
                x = t[i, c]
                total_c[c] += x if lo_out[c] <= i and i < hi_out[c] else 0.0
        for c in range(m):
            if kcount[c] > 0:
                vals[c] = total_c[c] / (hi_out[c] - lo_out[c])


__all__ = ["METHOD_CODES", "solve_block"]
