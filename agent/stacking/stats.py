"""Robust per-frame statistics and the critical values of the generalized ESD test.

Per-frame statistics are estimated from a row sample (every k-th row) so that building them
never needs a whole frame in memory; the sample size is recorded with the master.
The Student-t quantiles behind the GESD critical values are computed here (no SciPy at runtime).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numba
import numpy as np

T = TypeVar("T")
R = TypeVar("R")

MAD_TO_SIGMA = 1.4826
"""Scale of the median absolute deviation to a Gaussian standard deviation."""


@dataclass(frozen=True)
class SampleStats:
    """Location, scale and noise of one frame from its row sample."""

    location: float  # median
    scale: float  # 1.4826 * MAD around the median
    noise: float  # Gaussian-equivalent pixel noise from same-colour neighbour differences
    pixels: int  # sample size


def per_frame(fn: Callable[[T], R], items: Sequence[T], threads: int | None = None) -> list[R]:
    """`[fn(x) for x in items]` on a few threads: numpy's medians (partition) and file reads release
    the GIL, so the per-frame statistics of a series take half the time on two cores; order kept."""
    workers = max(1, min(len(items), threads or os.cpu_count() or 1))
    if workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="frame-stats") as pool:
        return list(pool.map(fn, items))


def sample_stats(rows: np.ndarray) -> SampleStats:
    """Statistics of a 2-D row sample; NaNs are ignored.

    Noise uses differences of pixels two columns apart (same Bayer colour), so vignetting and the
    CFA pattern of a flat do not inflate it: sigma = 1.4826 * MAD(diff) / sqrt(2).
    """
    values = np.asarray(rows, dtype=np.float64)
    flat = values[np.isfinite(values)]
    if flat.size == 0:
        return SampleStats(math.nan, math.nan, math.nan, 0)
    location = float(np.median(flat))
    scale = MAD_TO_SIGMA * float(np.median(np.abs(flat - location)))
    noise = math.nan
    if values.ndim == 2 and values.shape[1] > 2:
        diff = (values[:, 2:] - values[:, :-2]).ravel()
        diff = diff[np.isfinite(diff)]
        if diff.size:
            noise = MAD_TO_SIGMA * float(np.median(np.abs(diff - np.median(diff)))) / math.sqrt(2.0)
    return SampleStats(location, scale, noise, int(flat.size))


# --- Student-t quantiles -------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _betacf(a: float, b: float, x: float) -> float:  # pragma: no cover - compiled
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


@numba.njit(cache=True, nogil=True)
def _betai(a: float, b: float, x: float) -> float:  # pragma: no cover - compiled
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1.0 - x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


@numba.njit(cache=True, nogil=True)
def _t_sf(t: float, df: float) -> float:  # pragma: no cover - compiled
    """Upper tail P(T > t) of Student's t for t >= 0."""
    return 0.5 * _betai(0.5 * df, 0.5, df / (df + t * t))


@numba.njit(cache=True, nogil=True)
def t_quantile(p: float, df: float) -> float:  # pragma: no cover - compiled
    """Quantile of Student's t with `df` degrees of freedom, for 0.5 <= p < 1 (bisection)."""
    tail = 1.0 - p
    if tail >= 0.5:
        return 0.0
    lo = 0.0
    hi = 1.0
    while _t_sf(hi, df) > tail:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_sf(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


@numba.njit(cache=True, nogil=True)
def _gesd_table(n_max: int, r_max: int, alpha: float) -> np.ndarray:  # pragma: no cover - compiled
    table = np.full((n_max + 1, r_max + 1), np.inf)
    for n in range(3, n_max + 1):
        for i in range(1, r_max + 1):
            dof = n - i - 1
            if dof < 1:
                break
            p = 1.0 - alpha / (2.0 * (n - i + 1))
            t = t_quantile(p, float(dof))
            table[n, i] = (n - i) * t / math.sqrt((dof + t * t) * (n - i + 1))
    return table


def gesd_critical_values(n_max: int, outlier_fraction: float, alpha: float) -> np.ndarray:
    """Rosner's critical values lambda_i for every stack size n <= n_max.

    table[n, i] = (n - i) t_{p, n-i-1} / sqrt((n - i - 1 + t^2)(n - i + 1)),
    p = 1 - alpha / (2 (n - i + 1)), for i = 1 .. floor(fraction * n); inf where undefined.
    """
    r_max = max(1, int(math.floor(outlier_fraction * n_max)))
    return np.asarray(_gesd_table(int(n_max), r_max, float(alpha)))
