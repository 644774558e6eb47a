"""Cosmetic correction: defect maps from masters, and replacement by same-colour neighbours.

Hot and cold pixels are found once per master (dark: excess over the local median of the same
CFA colour; flat: relative departure from it) and stored with the master as a uint8 map, so
calibrating a light only visits the listed pixels.  On a CFA sensor a pixel's neighbours of its
own colour are two pixels away; mixing colours would paint a red pixel with green.
"""

from __future__ import annotations

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


@numba.njit(parallel=True, nogil=True, cache=True)
def _neighbour_median(img: np.ndarray, step: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Median of the 8 same-colour neighbours (distance `step`) of every pixel, edges truncated."""
    rows, cols = img.shape
    for r in numba.prange(rows):
        buf = np.empty(8, np.float64)
        interior_row = step <= r < rows - step
        for c in range(cols):
            if interior_row and step <= c < cols - step:
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
                out[r, c] = _median8(buf)
                continue
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
            out[r, c] = _median_small(buf, n) if n > 0 else img[r, c]


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
    defects = np.zeros(ref.shape, np.uint8)
    dark_sigma = flat_sigma = float("nan")
    if master_dark is not None:
        d = np.asarray(master_dark, np.float64)
        resid = d - neighbour_median(d, cfa)
        dark_sigma = _robust_sigma(resid)
        if dark_sigma > 0:
            defects[resid > hot_sigma * dark_sigma] = HOT
            defects[resid < -cold_sigma * dark_sigma] = COLD
    if master_flat is not None:
        if master_dark is not None and master_flat.shape != master_dark.shape:
            raise FrameMismatch(
                f"master flat {master_flat.shape} and master dark {master_dark.shape} differ in size; "
                "use masters of one camera mode"
            )
        f = np.asarray(master_flat, np.float64)
        local = neighbour_median(f, cfa)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(local > 0, f / local, np.nan)
        flat_sigma = _robust_sigma(ratio)
        bad = ~np.isfinite(ratio) | (f <= 0) | (ratio < flat_cold)
        if flat_sigma > 0:
            bad |= np.abs(ratio - 1.0) > cold_sigma * flat_sigma
        defects[bad & (defects == 0)] = COLD
    stats = DefectStats(int((defects == HOT).sum()), int((defects == COLD).sum()), dark_sigma, flat_sigma)
    return defects, stats


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
