"""Dark optimisation: the dark scaling factor k that minimises the noise of the calibrated light.

The method of PixInsight's ImageCalibration: in a central window, keep only the pixels whose
thermal signal (master dark minus master bias) lies above median + 3 sigma_MAD, since only
those carry information about k; measure the noise of the first a-trous wavelet layer (B3
spline) of `light - k * thermal` there; find the minimum by golden-section search.  The wavelet
layer is linear, so both layers are computed once and each trial k costs one pass over the
selected pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent.errors import ObsAgentError

B3_SPLINE = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
MIN_PIXELS = 50


class DarkOptimizationFailed(ObsAgentError):
    """The master dark carries too little thermal signal to estimate k."""


@dataclass(frozen=True)
class DarkOptimization:
    """Result of the search: k, the noise there, and what it was measured on."""

    k: float
    noise: float  # noise of the first wavelet layer at k, on the selected pixels (ADU)
    noise_unscaled: float  # the same at k = 1, for comparison
    pixels: int  # selected pixels in the window
    window: tuple[int, int, int, int]  # (x, y, width, height)
    iterations: int


def first_wavelet_layer(img: np.ndarray) -> np.ndarray:
    """w1 = img - (img smoothed by the B3 spline), mirrored at the edges."""
    a = np.asarray(img, np.float64)
    pad = np.pad(a, 2, mode="reflect")
    rows = sum(B3_SPLINE[i] * pad[:, i : i + a.shape[1]] for i in range(5))
    smooth = sum(B3_SPLINE[i] * rows[i : i + a.shape[0], :] for i in range(5))
    return a - smooth


def central_window(shape: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of a centred window at most size x size, starting on even pixels (CFA phase)."""
    h, w = shape
    ww, wh = min(size, w), min(size, h)
    x0 = ((w - ww) // 2) & ~1
    y0 = ((h - wh) // 2) & ~1
    return x0, y0, ww, wh


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    i = np.abs(i)
    return np.where(i >= n, 2 * (n - 1) - i, i)


def wavelet_layer_at(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """`first_wavelet_layer(img)[ys, xs]` computed at those pixels only."""
    h, w = img.shape
    smooth = np.zeros(ys.size)
    for i in range(5):
        rows = _reflect(ys + i - 2, h)
        for j in range(5):
            smooth += (B3_SPLINE[i] * B3_SPLINE[j]) * img[rows, _reflect(xs + j - 2, w)]
    return img[ys, xs].astype(np.float64) - smooth


@dataclass
class DarkOptimizer:
    """The part of the search that depends only on the masters, prepared once per master set."""

    bias: np.ndarray  # bias in the window (float64)
    ys: np.ndarray  # selected pixels, window coordinates
    xs: np.ndarray
    wd: np.ndarray  # first wavelet layer of the thermal signal at the selected pixels
    window: tuple[int, int, int, int]

    @classmethod
    def prepare(
        cls, bias: np.ndarray, thermal: np.ndarray, *, window: int = 1024, threshold_sigma: float = 3.0
    ) -> DarkOptimizer:
        x0, y0, ww, wh = central_window(thermal.shape, window)
        sl = (slice(y0, y0 + wh), slice(x0, x0 + ww))
        d = np.asarray(thermal[sl], np.float64)
        med = float(np.median(d))
        sigma = 1.4826 * float(np.median(np.abs(d - med)))
        ys, xs = np.nonzero(d > med + threshold_sigma * sigma)
        if ys.size < MIN_PIXELS or not sigma > 0:
            raise DarkOptimizationFailed(
                f"only {ys.size} pixels of the master dark stand above its noise in the central "
                f"{ww}x{wh} window; use a longer master dark or calibrate without --dark-optimize"
            )
        return cls(np.asarray(bias[sl], np.float64), ys, xs, wavelet_layer_at(d, ys, xs), (x0, y0, ww, wh))

    def optimize(
        self, light: np.ndarray, *, k_nominal: float = 1.0, tolerance: float = 1e-4
    ) -> DarkOptimization:
        """Find k minimising the noise of `(light - bias) - k * thermal` at the selected pixels."""
        x0, y0, ww, wh = self.window
        window = np.asarray(light[y0 : y0 + wh, x0 : x0 + ww], np.float64) - self.bias
        wl = wavelet_layer_at(window, self.ys, self.xs)
        wd = self.wd

        def noise(k: float) -> float:
            return float(np.std(wl - k * wd))

        lo, hi = 0.0, max(2.0 * k_nominal, 1.5)
        # widen until the minimum is bracketed (a light much longer than its dark)
        while noise(hi) < noise(hi * GOLDEN) and hi < 1e4:
            hi *= 2.0
        a, b = lo, hi
        c = b - GOLDEN * (b - a)
        e = a + GOLDEN * (b - a)
        fc, fe = noise(c), noise(e)
        iterations = 0
        while (b - a) > tolerance * max(1.0, abs(c)) and iterations < 200:
            if fc < fe:
                b, e, fe = e, c, fc
                c = b - GOLDEN * (b - a)
                fc = noise(c)
            else:
                a, c, fc = c, e, fe
                e = a + GOLDEN * (b - a)
                fe = noise(e)
            iterations += 1
        k = 0.5 * (a + b)
        return DarkOptimization(k, noise(k), noise(1.0), int(self.ys.size), self.window, iterations)


def optimize_dark(
    light: np.ndarray,
    bias: np.ndarray,
    thermal: np.ndarray,
    *,
    k_nominal: float = 1.0,
    window: int = 1024,
    threshold_sigma: float = 3.0,
    tolerance: float = 1e-4,
) -> DarkOptimization:
    """Find k minimising the noise of `(light - bias) - k * thermal` (thermal = dark - bias, ADU)."""
    prepared = DarkOptimizer.prepare(bias, thermal, window=window, threshold_sigma=threshold_sigma)
    return prepared.optimize(light, k_nominal=k_nominal, tolerance=tolerance)
