"""Clouds seen in our own lights: fewer stars, or a brighter sky, than the night's clear lights.

No weather device is needed. Per (target, filter, exposure) the check keeps a reference: the median
star count and sky level of the best (most stars) few lights of that key tonight. A light is
cloudy when it has fewer than `min_star_fraction` of the reference's stars, or a sky above the
pedestal more than `max_sky_ratio` times the reference's (clouds lit by a town or the Moon).

A night that starts under cloud must not become the reference: a light joins it only with at
least `min_stars` stars, at any exposure. Until one does, lights are kept and said to be unjudged
(with the rule named), so a sparse field (narrowband, short exposures) is not lost. Because the
reference keeps the best lights, clear lights that come later replace clouded ones, and thin
cloud thickening slowly cannot drag it down.

Stars are counted by a small robust detector (no INDI, no SciPy): the background is a coarse grid
of block medians, the noise the MAD of what is left (per cell too), and a star a local maximum of the 3x3 sum
standing `detect_sigma` above the noise whose brightest pixel holds less than `max_sharpness` of
the sum (a hot pixel or cosmic ray holds nearly all of it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent.stacking.quality import block_medians, robust_level

CloudKey = tuple[str, str, float]  # target, filter, exposure (s)
TILE = 32  # pixels per background cell
BIN_ABOVE = 4_000_000  # frames with more pixels are binned 2x2 before counting


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None
    sky: float  # median level of the raw light (ADU)
    stars: int


@dataclass
class _Reference:
    best: list[tuple[int, float]] = field(default_factory=list)  # (stars, sky), most stars first

    def stars(self) -> float:
        return float(np.median([s for s, _ in self.best]))

    def sky(self) -> float:
        return float(np.median([k for _, k in self.best]))


def count_stars(data: np.ndarray, detect_sigma: float = 5.0, max_sharpness: float = 0.7) -> int:
    """How many star-like peaks the frame shows above its local background."""
    a = np.asarray(data, dtype=np.float32)
    if a.ndim != 2 or min(a.shape) < 8:
        return 0
    if a.size > BIN_ABOVE:
        h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    h, w = a.shape
    cells = (max(1, h // TILE), max(1, w // TILE))
    r = np.nan_to_num(a - _bilinear(block_medians(np.nan_to_num(a), cells), h, w))
    # the noise is local too: a bright corner (Moon, town) is noisier than the dark one
    sigma = 1.4826 * _bilinear(block_medians(np.abs(r), cells), h, w)
    if not np.any(sigma > 0):
        return 0
    p = np.pad(r, 1)  # zero: the background, never a copy of an edge pixel
    shifts = [p[1 + dy:h + 1 + dy, 1 + dx:w + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    s = np.sum(shifts, axis=0)  # the 3x3 sum around each pixel
    q = np.pad(s, 1, mode="constant", constant_values=-np.inf)
    peak = s > detect_sigma * 3.0 * sigma  # the sum of 9 pixels has 3 sigma of noise
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                neighbour = q[1 + dy:h + 1 + dy, 1 + dx:w + 1 + dx]
                # ties go to the first pixel in reading order, so a flat-topped star counts once
                peak &= (s > neighbour) if (dy, dx) < (0, 0) else (s >= neighbour)
    peak &= np.max(shifts, axis=0) < max_sharpness * s  # not one bright pixel with noise around it
    return int(np.count_nonzero(peak))


def _bilinear(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """The coarse grid interpolated between cell centres to h x w (steps would look like stars)."""

    def axis(n: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.clip((np.arange(n) + 0.5) * cells / n - 0.5, 0, cells - 1)
        lo = np.floor(f).astype(int)
        return lo, np.minimum(lo + 1, cells - 1), (f - lo).astype(np.float32)

    y0, y1, ty = axis(h, grid.shape[0])
    x0, x1, tx = axis(w, grid.shape[1])
    g = grid.astype(np.float32)
    top = g[y0][:, x0] * (1 - tx) + g[y0][:, x1] * tx
    bottom = g[y1][:, x0] * (1 - tx) + g[y1][:, x1] * tx
    return np.asarray(top * (1 - ty)[:, None] + bottom * ty[:, None], dtype=np.float32)


class CloudCheck:
    """Judges each light against the night's clear lights of the same target, filter and exposure."""

    def __init__(
        self,
        min_star_fraction: float = 0.3,
        max_sky_ratio: float = 3.0,
        min_stars: int = 8,
        pedestal: float = 0.0,
        keep: int = 5,
    ) -> None:
        self.min_star_fraction = min_star_fraction
        self.max_sky_ratio = max_sky_ratio
        self.min_stars = min_stars
        self.pedestal = pedestal  # the camera's bias level, where known: the sky is judged above it
        self.keep = keep
        self._refs: dict[CloudKey, _Reference] = {}

    def reference(self, key: CloudKey) -> tuple[float, float] | None:
        """(stars, sky) the key's lights are judged against, None before a clear light."""
        ref = self._refs.get(key)
        return (ref.stars(), ref.sky()) if ref and ref.best else None

    def judge(self, data: np.ndarray, key: CloudKey) -> Verdict:
        sky, _ = robust_level(np.nan_to_num(np.asarray(data, dtype=np.float32)))
        stars = count_stars(data)
        ref = self._refs.setdefault(key, _Reference())
        if ref.best:
            expected, ref_sky = ref.stars(), ref.sky()
            if stars < self.min_star_fraction * expected:
                return Verdict(False, f"cloud: {stars} stars against {expected:.0f} expected", sky, stars)
            above, ref_above = sky - self.pedestal, ref_sky - self.pedestal
            if ref_above > 0 and above > self.max_sky_ratio * ref_above:
                return Verdict(
                    False, f"cloud: sky {above:.0f} ADU above the pedestal against {ref_above:.0f}", sky, stars
                )
        if stars < self.min_stars:
            # Too few stars to be a reference. Without one there is nothing to judge against: a sparse
            # field (narrowband, a short exposure) must not lose every light, so the light is kept
            # and said to be unjudged; with one, it is within the reference's range.
            note = None if ref.best else (
                f"not judged for clouds: {stars} stars, fewer than the {self.min_stars} a reference needs "
                "(safety.cloud_check.min_stars)"
            )
            return Verdict(True, note, sky, stars)
        ref.best.append((stars, sky))
        ref.best.sort(key=lambda item: -item[0])
        del ref.best[self.keep:]
        return Verdict(True, None, sky, stars)
