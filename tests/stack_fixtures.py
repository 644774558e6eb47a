"""Plain, slow numpy references for the stacking tests, written from the definitions in issue 4.

They deliberately share no code with the kernels: per pixel, they keep a boolean set of values
and recompute every statistic from scratch with numpy each pass.
"""

from __future__ import annotations

import math

import numpy as np


def t_ppf(p: float, df: int) -> float:
    try:
        from scipy.stats import t

        return float(t.ppf(p, df))
    except ImportError:  # the engine's own quantile is checked against tables in the tests
        from agent.stacking.stats import t_quantile

        return float(t_quantile(p, float(df)))


def reference_pixel(
    values: np.ndarray, method: str, kl: float, kh: float, combine: str = "mean"
) -> tuple[float, int]:
    """(combined value, number rejected) for one pixel's values across frames."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return math.nan, 0
    kept = x.copy()
    if method == "none" or n < 3:
        pass
    elif method == "percentile":
        m = float(np.median(x))
        if m > 0:
            keep = ~(((m - x) > kl * m) | ((x - m) > kh * m))
            if keep.any():
                kept = x[keep]
    elif method in ("sigma", "mad", "avgsigma", "winsorized"):
        s_k = 0.0
        if method == "avgsigma":
            m0 = float(np.median(x))
            if m0 <= 0:
                return _combine(kept, combine), 0
            s_k = math.sqrt(np.sum((x - m0) ** 2) / (m0 * (n - 1)))
        while kept.size >= 3:
            m = float(np.median(kept))
            s: float
            if method == "sigma":
                s = float(np.std(kept, ddof=1))
            elif method == "mad":
                s = 1.4826 * float(np.median(np.abs(kept - m)))
            elif method == "avgsigma":
                if m <= 0:
                    break
                s = s_k * math.sqrt(m)
            else:
                s = float(np.std(kept, ddof=1))
                w = kept.copy()
                for _ in range(1000):
                    w = np.clip(w, m - 1.5 * s, m + 1.5 * s)  # clamped in place, as Siril
                    s0 = s
                    s = 1.134 * float(np.std(w, ddof=1))
                    if abs(s - s0) <= 5e-4 * s0:
                        break
            keep = (kept >= m - kl * s) & (kept <= m + kh * s)
            if keep.all() or not keep.any():
                break
            kept = kept[keep]
    elif method == "linearfit":
        kept = np.sort(x)
        while kept.size >= 5:
            idx = np.arange(kept.size, dtype=np.float64)
            b, a = np.polyfit(idx, kept, 1)
            fit = a + b * idx
            s = np.mean(np.abs(kept - fit))
            rej = ((fit - kept) > kl * s) | ((kept - fit) > kh * s)
            if not rej.any() or rej.all():
                break
            kept = kept[~rej]
    elif method == "gesd":
        r = int(math.floor(kl * n))
        work = list(np.sort(x))
        removed: list[float] = []
        best = 0
        for i in range(1, r + 1):
            if len(work) < 3 or n - i - 1 < 1:
                break
            arr = np.array(work)
            mean = arr.mean()
            sd = arr.std(ddof=1)
            j = int(np.argmax(np.abs(arr - mean)))
            stat = abs(arr[j] - mean) / sd if sd > 0 else 0.0
            p = 1.0 - kh / (2.0 * (n - i + 1))
            t = t_ppf(p, n - i - 1)
            lam = (n - i) * t / math.sqrt((n - i - 1 + t * t) * (n - i + 1))
            removed.append(work.pop(j))
            if stat > lam:
                best = i
        kept = np.sort(x)
        for v in removed[:best]:
            kept = np.delete(kept, np.flatnonzero(kept == v)[0])
    else:
        raise ValueError(method)
    return _combine(kept, combine), n - kept.size


def _combine(kept: np.ndarray, how: str) -> float:
    return float(np.median(kept)) if how == "median" else float(np.mean(kept))


def reference_stack(
    cube: np.ndarray, method: str, kl: float, kh: float, combine: str = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """Apply `reference_pixel` to every pixel of a (frames, rows, cols) cube."""
    _, rows, cols = cube.shape
    out = np.empty((rows, cols))
    nrej = np.empty((rows, cols), np.int64)
    for r in range(rows):
        for c in range(cols):
            out[r, c], nrej[r, c] = reference_pixel(cube[:, r, c], method, kl, kh, combine)
    return out, nrej


def planted_stack(n: int, rows: int = 12, cols: int = 16, seed: int = 0, level: float = 1000.0) -> np.ndarray:
    """Noisy frames with cosmic rays, a satellite trail, one bright frame and a few cold values."""
    rng = np.random.default_rng(seed + 1000 * n)
    pattern = level + rng.normal(0, 20, (rows, cols))
    cube = pattern[None] + rng.normal(0, 10, (n, rows, cols))
    hits = rng.random(cube.shape) < 0.03
    cube[hits] += rng.uniform(200, 30000, hits.sum())
    cold = rng.random(cube.shape) < 0.01
    cube[cold] -= rng.uniform(100, 800, cold.sum())
    trail_frame = n // 2
    cube[trail_frame, np.arange(rows), np.arange(rows) % cols] += 400.0
    if n >= 5:
        cube[n - 1] += 60.0  # one bright frame
    return cube.astype(np.float32)
