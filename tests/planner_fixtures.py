"""Helpers for planner tests: build sequences in code and compute the Sun's crossings independently."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from agent import offline
from agent.config import Sequence, parse_sequence

SITES: dict[str, dict[str, Any]] = {
    "52N": {
        "name": "Berlin",
        "latitude": 52.52,
        "longitude": 13.40,
        "elevation": 40,
        "timezone": "Europe/Berlin",
    },
    "32N": {
        "name": "Kitt Peak",
        "latitude": 31.96,
        "longitude": -111.60,
        "elevation": 2096,
        "timezone": "America/Phoenix",
    },
    "35S": {
        "name": "Canberra",
        "latitude": -35.28,
        "longitude": 149.13,
        "elevation": 580,
        "timezone": "Australia/Sydney",
    },
    "69N": {
        "name": "Tromso",
        "latitude": 69.65,
        "longitude": 18.96,
        "elevation": 10,
        "timezone": "Europe/Oslo",
    },
}


def make_sequence(
    site: dict[str, Any], targets: list[dict[str, Any]] | None = None, **sections: Any
) -> Sequence:
    """A valid sequence for `site`; `sections` replace top-level sections (calibration=..., schedule=...)."""
    data: dict[str, Any] = {
        "version": 1,
        "site": site,
        "indi": {"devices": {"camera": "CCD Simulator", "wheel": "Filter Simulator"}},
        "camera": {"sensor": "cmos", "set_point": -10, "gain": 100, "offset": 50, "binning": 1},
        "filters": ["L", "R", "G", "B", "Ha"],
        "targets": targets or [],
        "calibration": {"flats": {"source": "sky-both"}},
    }
    data.update(sections)
    import json

    # JSON is valid YAML: the real parser (with its line mapping) is exercised too.
    return parse_sequence(json.dumps(data, indent=1), "test.yaml")


def sun_altitude(latitude: float, longitude: float, elevation: float, unix: np.ndarray) -> np.ndarray:
    """The Sun's altitude straight from astropy (get_sun, AltAz, no refraction), without astroplan."""
    offline.configure()
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_sun
    from astropy.time import Time

    location = EarthLocation.from_geodetic(longitude * u.deg, latitude * u.deg, elevation * u.m)
    times = Time(unix, format="unix", scale="utc")
    return np.asarray(get_sun(times).transform_to(AltAz(obstime=times, location=location)).alt.deg)


def reference_crossings(
    site: dict[str, Any], start: dt.datetime, end: dt.datetime, levels: list[float]
) -> tuple[dict[float, tuple[list[float], list[float]]], float]:
    """Per level, descending and ascending crossings (unix) from a 1-minute grid and bisection to
    0.1 s; plus the time of the Sun's lowest point on the grid."""
    lat, lon, elev = site["latitude"], site["longitude"], site["elevation"]
    grid = np.arange(start.timestamp(), end.timestamp() + 1, 60.0)
    alt = sun_altitude(lat, lon, elev, grid)
    lowest = float(grid[int(np.argmin(alt))])
    rows: list[tuple[float, int, bool]] = []
    for level in levels:
        f = alt - level
        rows += [(level, int(i), True) for i in np.flatnonzero((f[:-1] > 0) & (f[1:] <= 0))]
        rows += [(level, int(i), False) for i in np.flatnonzero((f[:-1] <= 0) & (f[1:] > 0))]
    result: dict[float, tuple[list[float], list[float]]] = {level: ([], []) for level in levels}
    if not rows:
        return result, lowest
    level_of = np.array([r[0] for r in rows])
    descending = np.array([r[2] for r in rows])
    lo = np.array([grid[r[1]] for r in rows], dtype=float)
    hi = lo + 60.0
    while np.max(hi - lo) > 0.1:
        mid = (lo + hi) / 2
        above = sun_altitude(lat, lon, elev, mid) > level_of
        move_lo = above == descending
        lo, hi = np.where(move_lo, mid, lo), np.where(move_lo, hi, mid)
    for (level, _, down), t in zip(rows, (lo + hi) / 2, strict=True):
        result[level][0 if down else 1].append(float(t))
    return result, lowest
