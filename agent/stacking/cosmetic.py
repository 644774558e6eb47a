"""Cosmetic correction: defect maps from masters, and replacement by same-colour neighbours.

Hot and cold pixels are found once per master (dark: excess over the local median of the same
CFA colour; flat: relative departure from it) and stored with the master as a uint8 map, so
calibrating a light only visits the listed pixels.  On a CFA sensor a pixel's neighbours of its
own colour are two pixels away; mixing colours would paint a red pixel with green.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from astropy.io import fits

from agent.errors import FrameMismatch

HOT = np.uint8(1)
COLD = np.uint8(2)
MAD_TO_SIGMA = 1.4826
CFA_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


@dataclass(frozen=True)
class DefectStats:
    """How many pixels a defect map marks, and the thresholds that found them."""

    hot: int
    cold: int
    dark_sigma: float  # Gaussian-equivalent spread of the dark around its local median (ADU)
    flat_sigma: float  # relative spread of the flat around its local median


def cfa_pattern(header: fits.Header | None) -> str | None:
    """The CFA pattern of pixel (0, 0), with XBAYROFF/YBAYROFF applied; None for mono."""
    if header is None:
        return None
    pat = str(header.get("BAYERPAT", "")).strip().upper()
    if pat in ("", "NONE", "MONO", "FALSE"):
        return None
    if pat not in CFA_PATTERNS:
        raise FrameMismatch(
            f"unknown CFA pattern BAYERPAT={pat!r}; fix the header to one of {', '.join(CFA_PATTERNS)}"
        )
    dx = int(header.get("XBAYROFF", 0) or 0) % 2
    dy = int(header.get("YBAYROFF", 0) or 0) % 2
    tile = [[pat[0], pat[1]], [pat[2], pat[3]]]
    return "".join(tile[(r + dy) % 2][(c + dx) % 2] for r in (0, 1) for c in (0, 1))


def cfa_channels(pattern: str | None) -> dict[str, list[tuple[int, int]]]:
    """Colour -> list of (row, col) parities in the 2x2 tile; mono is one channel at stride 1."""
    if pattern is None:
        return {"L": []}
    out: dict[str, list[tuple[int, int]]] = {}
    for i, colour in enumerate(pattern):
        out.setdefault(colour, []).append((i // 2, i % 2))
    return out


@numba.njit(nogil=True, cache=True)
def _median_small(v: np.ndarray, n: int) -> float:  # pragma: no cover - compiled
    for i in range(1, n):
        x = v[i]
        j = i - 1
        while j >= 0 and v[j] > x:
            v[j + 1] = v[j]
            j -= 1
        v[j + 1] = x
    if n % 2 == 1:
        return v[n // 2]
    return 0.5 * (v[n // 2 - 1] + v[n // 2])


@numba.njit(inline="always", nogil=True, cache=True)
def _cs(v: np.ndarray, i: int, j: int) -> None:  # pragma: no cover - compiled
    a, b = v[i], v[j]
    v[i] = min(a, b)
    v[j] = max(a, b)


@numba.njit(inline="always", nogil=True, cache=True)
def _median8(v: np.ndarray) -> float:  # pragma: no cover - compiled
    """Median of 8 values: Batcher's odd-even merge network (19 branch-free compare-swaps)."""
    _cs(v, 0, 1)
    _cs(v, 2, 3)
    _cs(v, 4, 5)
    _cs(v, 6, 7)  # noqa: E702
    _cs(v, 0, 2)
    _cs(v, 1, 3)
    _cs(v, 4, 6)
    _cs(v, 5, 7)  # noqa: E702
    _cs(v, 1, 2)
    _cs(v, 5, 6)  # noqa: E702
    _cs(v, 0, 4)
    _cs(v, 1, 5)
    _cs(v, 2, 6)
    _cs(v, 3, 7)  # noqa: E702
    _cs(v, 2, 4)
    _cs(v, 3, 5)  # noqa: E702
    _cs(v, 1, 2)
    _cs(v, 3, 4)
    _cs(v, 5, 6)  # noqa: E702
    return 0.5 * (v[3] + v[4])


@numba.njit(inline="always", nogil=True, cache=True)
def _median_at(img: np.ndarray, r: int, c: int, step: int, buf: np.ndarray) -> float:  # pragma: no cover
    """Median of the 8 same-colour neighbours (distance `step`) of pixel (r, c), edges truncated."""
    rows, cols = img.shape
    if step <= r < rows - step and step <= c < cols - step:
        up, mid, down = r - step, r, r + step
        left, right = c - step, c + step
        buf[0] = img[up, left]
        buf[1] = img[up, c]
        buf[2] = img[up, right]
        buf[3] = img[mid, left]
        buf[4] = img[mid, right]
        buf[5] = img[down, left]
        buf[6] = img[down, c]
        buf[7] = img[down, right]
        return _median8(buf)
    n = 0
    for dr in range(-1, 2):
        rr = r + dr * step
        if rr < 0 or rr >= rows:
            continue
        for dc in range(-1, 2):
            cc = c + dc * step
            if (dr == 0 and dc == 0) or cc < 0 or cc >= cols:
                continue
            buf[n] = img[rr, cc]
            n += 1
    return _median_small(buf, n) if n > 0 else np.float64(img[r, c])


@numba.njit(parallel=True, nogil=True, cache=True)
def _neighbour_median(img: np.ndarray, step: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Median of the 8 same-colour neighbours (distance `step`) of every pixel, edges truncated."""
    rows, cols = img.shape
    for r in numba.prange(rows):
        buf = np.empty(8, np.float64)
        for c in range(cols):
            out[r, c] = _median_at(img, r, c, step, buf)


@numba.njit(parallel=True, nogil=True, cache=True)
def _sampled_departure(
    img: np.ndarray, step: int, stride: int, relative: bool, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Departure from the neighbours' median at every `stride`-th pixel (flat index): the dark's
    excess `x - med`, or the flat's ratio `x / med` (NaN where med <= 0)."""
    cols = img.shape[1]
    for i in numba.prange(out.size):
        buf = np.empty(8, np.float64)
        j = i * stride
        r = j // cols
        c = j - r * cols
        x = np.float64(img[r, c])
        med = _median_at(img, r, c, step, buf)
        if relative:
            out[i] = x / med if med > 0 else np.nan
        else:
            out[i] = x - med


@numba.njit(parallel=True, nogil=True, cache=True)
def _mark_dark(
    img: np.ndarray, step: int, hot_above: float, cold_below: float, defects: np.ndarray
) -> None:  # pragma: no cover - compiled
    """HOT where `x - med > hot_above`, COLD where `x - med < cold_below`."""
    rows, cols = img.shape
    for r in numba.prange(rows):
        buf = np.empty(8, np.float64)
        for c in range(cols):
            resid = np.float64(img[r, c]) - _median_at(img, r, c, step, buf)
            if resid > hot_above:
                defects[r, c] = 1
            elif resid < cold_below:
                defects[r, c] = 2


@numba.njit(parallel=True, nogil=True, cache=True)
def _mark_flat(
    img: np.ndarray, step: int, flat_cold: float, spread: float, defects: np.ndarray
) -> None:  # pragma: no cover - compiled
    """COLD (where not already marked) where `x / med` is not finite, x <= 0, the ratio is below
    `flat_cold`, or (unless spread is NaN) departs from 1 by more than `spread`."""
    rows, cols = img.shape
    for r in numba.prange(rows):
        buf = np.empty(8, np.float64)
        for c in range(cols):
            if defects[r, c] != 0:
                continue
            x = np.float64(img[r, c])
            med = _median_at(img, r, c, step, buf)
            ratio = x / med if med > 0 else np.nan
            bad = not math.isfinite(ratio) or x <= 0 or ratio < flat_cold
            if not math.isnan(spread) and abs(ratio - 1.0) > spread:
                bad = True
            if bad:
                defects[r, c] = 2


@numba.njit(nogil=True, cache=True)
def _replace(
    img: np.ndarray, ys: np.ndarray, xs: np.ndarray, defects: np.ndarray, step: int
) -> int:  # pragma: no cover
    """Replace each listed pixel by the median of its good same-colour neighbours; returns the count."""
    rows, cols = img.shape
    buf = np.empty(24, np.float64)
    done = 0
    for i in range(ys.size):
        r, c = ys[i], xs[i]
        for radius in (1, 2):  # widen once when a defect cluster hides every near neighbour
            n = 0
            for dr in range(-radius, radius + 1):
                rr = r + dr * step
                if rr < 0 or rr >= rows:
                    continue
                for dc in range(-radius, radius + 1):
                    if dr == 0 and dc == 0:
                        continue
                    cc = c + dc * step
                    if cc < 0 or cc >= cols or defects[rr, cc] != 0:
                        continue
                    buf[n] = img[rr, cc]
                    n += 1
            if n >= 2:
                break
        if n > 0:
            img[r, c] = _median_small(buf, n)
            done += 1
    return done


def neighbour_median(img: np.ndarray, cfa: str | None) -> np.ndarray:
    """Median of the same-colour neighbours of every pixel (float64)."""
    out = np.empty(img.shape, np.float64)
    _neighbour_median(np.ascontiguousarray(img, dtype=np.float64), 2 if cfa else 1, out)
    return out


def _robust_sigma(x: np.ndarray) -> float:
    """Gaussian-equivalent spread from the MAD; a regular 1-in-n sample of a large map is plenty."""
    x = x.ravel()[:: max(1, x.size // 1_000_000)]
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return MAD_TO_SIGMA * float(np.median(np.abs(x - np.median(x))))


def find_defects(
    master_dark: np.ndarray | None = None,
    master_flat: np.ndarray | None = None,
    cfa: str | None = None,
    *,
    hot_sigma: float = 6.0,
    cold_sigma: float = 6.0,
    flat_cold: float = 0.5,
) -> tuple[np.ndarray, DefectStats]:
    """Defect map (0 good, HOT, COLD) from a master dark and/or master flat.

    Dark: a pixel more than `hot_sigma` (`cold_sigma`) robust sigmas above (below) the median of
    its same-colour neighbours.  Flat: a pixel darker than `flat_cold` times its neighbours'
    median, or departing from it by more than `cold_sigma` relative sigmas, or not positive.
    """
    ref = master_dark if master_dark is not None else master_flat
    if ref is None:
        raise ValueError("find_defects needs a master dark or a master flat")
    # Streamed through kernels: no full-frame float64 copy, median map or residual map (those
    # were 3 x 8 bytes a pixel, 280 MB on a 12 MP master).  The spread comes from the same
    # regular sample `_robust_sigma` takes, so the map is the one the array formulas give.
    defects = np.zeros(ref.shape, np.uint8)
    dark_sigma = flat_sigma = float("nan")
    step = 2 if cfa else 1
    if master_dark is not None:
        d = _kernel_input(master_dark)
        dark_sigma = _robust_sigma_of(_departures(d, step, relative=False))
        if dark_sigma > 0:
            _mark_dark(d, step, hot_sigma * dark_sigma, -cold_sigma * dark_sigma, defects)
    if master_flat is not None:
        if master_dark is not None and master_flat.shape != master_dark.shape:
            raise FrameMismatch(
                f"master flat {master_flat.shape} and master dark {master_dark.shape} differ in size; "
                "use masters of one camera mode"
            )
        f = _kernel_input(master_flat)
        flat_sigma = _robust_sigma_of(_departures(f, step, relative=True))
        spread = cold_sigma * flat_sigma if flat_sigma > 0 else float("nan")
        _mark_flat(f, step, flat_cold, spread, defects)
    stats = DefectStats(int((defects == HOT).sum()), int((defects == COLD).sum()), dark_sigma, flat_sigma)
    return defects, stats


def _kernel_input(img: np.ndarray) -> np.ndarray:
    """float32 masters go to the kernels as they are (values are widened to float64 per pixel)."""
    a = np.asarray(img)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return np.ascontiguousarray(a)


def _departures(img: np.ndarray, step: int, relative: bool) -> np.ndarray:
    """The departures at the pixels `_robust_sigma` samples (every size // 1e6-th flat index)."""
    stride = max(1, img.size // 1_000_000)
    out = np.empty(len(range(0, img.size, stride)), np.float64)
    _sampled_departure(img, step, stride, relative, out)
    return out


def _robust_sigma_of(sample: np.ndarray) -> float:
    """`_robust_sigma` of an already-taken sample."""
    x = sample[np.isfinite(sample)]
    if x.size == 0:
        return float("nan")
    return MAD_TO_SIGMA * float(np.median(np.abs(x - np.median(x))))


def correct(image: np.ndarray, defects: np.ndarray, cfa: str | None) -> int:
    """Replace the defect pixels of `image` in place; returns how many were replaced."""
    if defects.shape != image.shape:
        raise FrameMismatch(
            f"defect map {defects.shape[1]}x{defects.shape[0]} does not fit the image "
            f"{image.shape[1]}x{image.shape[0]}; rebuild the master for this camera mode"
        )
    ys, xs = np.nonzero(defects)
    if ys.size == 0:
        return 0
    return int(_replace(image, ys.astype(np.int64), xs.astype(np.int64), defects, 2 if cfa else 1))


def correct_at(
    image: np.ndarray, ys: np.ndarray, xs: np.ndarray, defects: np.ndarray, cfa: str | None
) -> int:
    """`correct` with the defect pixels already listed (int64 rows and columns): no full-frame scan."""
    if ys.size == 0:
        return 0
    return int(_replace(image, ys, xs, defects, 2 if cfa else 1))
