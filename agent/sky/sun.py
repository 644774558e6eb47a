"""The Sun's altitude across a night: a coarse grid with exact threshold crossings on demand.

Pure astronomy (astroplan's Observer in, numbers out): the planner and the sky-flat model build on it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

SUNSET_ALTITUDE = -0.833
"""Sun's centre at sunset and sunrise: upper limb on the horizon with standard refraction."""

TWILIGHTS: dict[str, float] = {"civil": -6.0, "nautical": -12.0, "astronomical": -18.0}

SUN_STEP_S = 600.0
_REFINE_PIECES = (40, 30)  # 600 s -> 15 s -> 0.5 s, then linear interpolation

UTC = dt.UTC


class SunCurve:
    """The Sun's altitude across the night on a grid, with exact threshold crossings on demand."""

    def __init__(self, observer: Any, start: float, end: float) -> None:
        self.observer = observer
        self.times = np.arange(start, end + SUN_STEP_S / 2, SUN_STEP_S)
        self.altitude = self.at(self.times)
        self.lowest = int(np.argmin(self.altitude))
        self.lowest_time = self._vertex()

    def _vertex(self) -> float:
        """Time of the Sun's lowest point: a parabola through the grid minimum and its neighbours."""
        i = self.lowest
        if i == 0 or i == len(self.times) - 1:
            return float(self.times[i])
        a, b, c = self.altitude[i - 1 : i + 2]
        curvature = a - 2 * b + c
        shift = 0.5 * (a - c) / curvature if curvature > 0 else 0.0
        return float(self.times[i] + np.clip(shift, -1.0, 1.0) * SUN_STEP_S)

    def at(self, unix: np.ndarray) -> np.ndarray:
        from astropy.time import Time

        return np.asarray(self.observer.sun_altaz(Time(unix, format="unix", scale="utc")).alt.deg)

    def bracket(self, level: float, half: Literal["dusk", "dawn"]) -> int | Literal["above", "below"]:
        """Grid index i with the crossing between i and i+1, or where the Sun stays instead."""
        alt = self.altitude
        if half == "dusk":
            seg = alt[: self.lowest + 1]
            hits = np.nonzero((seg[:-1] > level) & (seg[1:] <= level))[0]
            if hits.size:
                return int(hits[-1])
            return "above" if seg[-1] > level else "below"
        seg = alt[self.lowest :]
        hits = np.nonzero((seg[:-1] <= level) & (seg[1:] > level))[0]
        if hits.size:
            return int(hits[0]) + self.lowest
        return "above" if seg[0] > level else "below"

    def refine(self, requests: list[tuple[int, float, bool]]) -> list[float]:
        """Exact times (unix) of (grid index, level, descending) crossings, all found together.

        Each bracket is cut into pieces twice (ten minutes -> 15 s -> 0.5 s) with one vectorised
        Sun computation per pass, then interpolated linearly: robust near a tangential crossing
        and far cheaper than one astropy call per bisection step.
        """
        if not requests:
            return []
        lo = np.array([self.times[i] for i, _, _ in requests], dtype=float)
        hi = lo + SUN_STEP_S
        level = np.array([lv for _, lv, _ in requests])[:, None]
        descending = np.array([d for _, _, d in requests])[:, None]
        for pieces in _REFINE_PIECES:
            fractions = np.linspace(0.0, 1.0, pieces + 1)[None, :]
            times = lo[:, None] + (hi - lo)[:, None] * fractions
            above = self.at(times.ravel()).reshape(times.shape) - level
            crossed = np.where(
                descending,
                (above[:, :-1] > 0) & (above[:, 1:] <= 0),
                (above[:, :-1] <= 0) & (above[:, 1:] > 0),
            )
            # The piece holding the crossing (the bracket guarantees one; argmax picks the first).
            k = np.where(crossed.any(axis=1), np.argmax(crossed, axis=1), 0)
            rows = np.arange(len(requests))
            f0, f1 = above[rows, k], above[rows, k + 1]
            lo, hi = times[rows, k], times[rows, k + 1]
        share = np.where(f0 != f1, f0 / np.where(f0 != f1, f0 - f1, 1.0), 0.5)
        return list(lo + (hi - lo) * np.clip(share, 0.0, 1.0))


def unix_to_utc(unix: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(round(float(unix), 3), tz=UTC)


def solar_midnight_guess(date: dt.date, longitude: float, zone: ZoneInfo) -> float:
    """Unix time of the solar midnight nearest local midnight after DATE (mean Sun; +-16 min)."""
    local_midnight = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=zone).timestamp()
    utc_midnight = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=UTC).timestamp()
    guess = utc_midnight - longitude / 15.0 * 3600.0
    days = round((local_midnight - guess) / 86400.0)
    return guess + days * 86400.0


def format_altitude(value: float) -> str:
    return f"{value:+.1f}°".replace("-", "−")
