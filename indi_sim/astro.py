"""Low-precision Sun position and sidereal time, good to a few hundredths of a degree.

The simulator needs the Sun's altitude for every frame and the mount's horizontal coordinates;
a closed-form solar ephemeris keeps the driver free of IERS tables and fast to start.
Formulae: Astronomical Almanac low-precision Sun (valid 1950-2050).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

_J2000 = datetime(2000, 1, 1, 12, 0, 0, tzinfo=UTC)


def days_since_j2000(when: datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _J2000).total_seconds() / 86400.0


def local_sidereal_time_deg(when: datetime, lon_deg: float) -> float:
    """Local mean sidereal time in degrees (east longitude positive)."""
    d = days_since_j2000(when)
    gmst = 280.46061837 + 360.98564736629 * d
    return (gmst + lon_deg) % 360.0


def sun_radec_deg(when: datetime) -> tuple[float, float]:
    """Apparent right ascension and declination of the Sun, degrees."""
    n = days_since_j2000(when)
    mean_lon = (280.460 + 0.9856474 * n) % 360.0
    g = math.radians((357.528 + 0.9856003 * n) % 360.0)
    ecl_lon = math.radians(mean_lon + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    eps = math.radians(23.439 - 0.0000004 * n)
    ra = math.degrees(math.atan2(math.cos(eps) * math.sin(ecl_lon), math.cos(ecl_lon))) % 360.0
    dec = math.degrees(math.asin(math.sin(eps) * math.sin(ecl_lon)))
    return ra, dec


def radec_to_altaz(ra_deg: float, dec_deg: float, when: datetime, lat_deg: float, lon_deg: float) -> tuple[float, float]:
    """Altitude and azimuth (north = 0, east = 90) in degrees, without refraction."""
    ha = math.radians(local_sidereal_time_deg(when, lon_deg) - ra_deg)
    lat = math.radians(lat_deg)
    dec = math.radians(dec_deg)
    sin_alt = math.sin(dec) * math.sin(lat) + math.cos(dec) * math.cos(lat) * math.cos(ha)
    alt = math.asin(max(-1.0, min(1.0, sin_alt)))
    az = math.atan2(-math.sin(ha) * math.cos(dec), math.cos(lat) * math.sin(dec) - math.sin(lat) * math.cos(dec) * math.cos(ha))
    return math.degrees(alt), math.degrees(az) % 360.0


def altaz_to_radec(alt_deg: float, az_deg: float, when: datetime, lat_deg: float, lon_deg: float) -> tuple[float, float]:
    """Inverse of `radec_to_altaz`: (ra, dec) in degrees."""
    alt = math.radians(alt_deg)
    az = math.radians(az_deg)
    lat = math.radians(lat_deg)
    sin_dec = math.sin(alt) * math.sin(lat) + math.cos(alt) * math.cos(lat) * math.cos(az)
    dec = math.asin(max(-1.0, min(1.0, sin_dec)))
    ha = math.atan2(-math.sin(az) * math.cos(alt), math.cos(lat) * math.sin(alt) - math.sin(lat) * math.cos(alt) * math.cos(az))
    ra = (local_sidereal_time_deg(when, lon_deg) - math.degrees(ha)) % 360.0
    return ra, math.degrees(dec)


def sun_altaz(when: datetime, lat_deg: float, lon_deg: float) -> tuple[float, float]:
    ra, dec = sun_radec_deg(when)
    return radec_to_altaz(ra, dec, when, lat_deg, lon_deg)
