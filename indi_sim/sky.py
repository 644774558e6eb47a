"""The sky the telescope looks at: its brightness as the Sun sets and rises, a mild gradient, and a
fixed star field per pointing that trails when the mount does not track.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from indi_sim.optics import FilterSpec, Optics, OpticsModel
from indi_sim.sensor import SensorSpec


def sky_flux_e_s(sun_altitude_deg: float, night_e_s: float = 1.0) -> float:
    """Sky flux in e-/s for a 3.76 um pixel in L, following the Sun's altitude.

    Piecewise linear in log10: 0.08 dex/deg above the horizon, 0.22 dex/deg (a factor 10 per
    ~4.5 deg) from 0 to -10 deg, 0.30 dex/deg below -10 deg, plus a constant night floor.
    7000 e-/s at -6 deg.
    """
    a = sun_altitude_deg
    log_ref = math.log10(7000.0)
    if a >= 0.0:
        log_f = log_ref + 0.22 * 6.0 + 0.08 * min(a, 30.0)
    elif a >= -10.0:
        log_f = log_ref + 0.22 * (a + 6.0)
    else:
        log_f = log_ref - 0.22 * 4.0 + 0.30 * (a + 10.0)
    return 10.0**log_f + night_e_s


def _cover(cloud_cover: float) -> float:
    return min(max(float(cloud_cover), 0.0), 1.0)


def cloud_star_transmission(cloud_cover: float, optics: Optics) -> float:
    """Fraction of star light passing a cloud cover c (0..1): 1 - c (1 - t_full), t_full = 0.02."""
    return 1.0 - _cover(cloud_cover) * (1.0 - optics.cloud_star_transmission)


def cloud_sky_factor(cloud_cover: float, sun_altitude_deg: float, optics: Optics) -> float:
    """Sky background under cloud cover c relative to the clear sky: 1 + c (k - 1).

    k is `cloud_sky_day` (0.4: an overcast twilight is darker) while the Sun is above -12 deg,
    `cloud_sky_night` (2.5: clouds lit by the ground) below -18 deg, log-linear in between.
    """
    night = min(max((-12.0 - sun_altitude_deg) / 6.0, 0.0), 1.0)
    k = optics.cloud_sky_day ** (1.0 - night) * optics.cloud_sky_night**night
    return 1.0 + _cover(cloud_cover) * (k - 1.0)


class SkyModel(OpticsModel):
    """The optics pointed at the sky: sky background and stars, in e-/s per pixel."""

    def __init__(self, spec: SensorSpec, seed: int, filters: tuple[FilterSpec, ...], optics: Optics) -> None:
        super().__init__(spec, seed, filters, optics)
        self._star_key: tuple[object, ...] | None = None
        self._star_cache: tuple[np.ndarray, int] | None = None

    def sky_flux(self, sun_altitude: float, filter_name: str, cloud_cover: float = 0.0) -> float:
        clear = sky_flux_e_s(sun_altitude) * self.filter_spec(filter_name).transmission * self.pixel_area_factor()
        return clear * cloud_sky_factor(cloud_cover, sun_altitude, self.optics)

    def star_transmission(self, cloud_cover: float) -> float:
        return cloud_star_transmission(cloud_cover, self.optics)

    @cached_property
    def _sky_gradient(self) -> np.ndarray:
        s = self.spec
        y, x = self._yx
        gx, gy = self.optics.sky_gradient
        return (1.0 + gx * (x / s.width - 0.5) + gy * (y / s.height - 0.5)).astype(np.float32)

    def star_field(self, field_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Star x, y (pixels) and flux (e-/s, L filter) for one patch of sky."""
        s = self.spec
        scale_deg = self.plate_scale_arcsec() / 3600.0
        area = s.width * s.height * scale_deg**2
        rng = self._rng(8, int(field_id) & 0x7FFFFFFF)
        n = int(rng.poisson(self.optics.star_density_per_deg2 * area))
        # magnitudes 6..16 with counts rising 10**0.35 per magnitude
        u = rng.uniform(size=n)
        k = 0.35 * math.log(10.0)
        mag = 6.0 + np.log1p(u * (math.exp(k * 10.0) - 1.0)) / k
        flux = 3.0e5 * 10.0 ** (-0.4 * (mag - 6.0))
        xs = rng.uniform(0, s.width, size=n)
        ys = rng.uniform(0, s.height, size=n)
        return xs, ys, flux

    def _add_stars(self, img: np.ndarray, field_id: int, tracking: bool, dec_deg: float, exposure: float,
                   sl: tuple[slice, slice], scale: float) -> int:
        """Add star light (e-/s times `scale`, averaged over the exposure when trailing) into `img`."""
        h, w = img.shape
        xs, ys, flux = self.star_field(field_id)
        if len(xs) == 0:
            return 0
        sigma = 1.4
        trail_px = 0.0
        if not tracking:
            trail_px = 15.041 * math.cos(math.radians(dec_deg)) * exposure / self.plate_scale_arcsec()
        n_sub = 1 if trail_px < 1.0 else int(min(64, math.ceil(trail_px)))
        sig = max(sigma, trail_px / n_sub / 2.0) if n_sub > 1 else sigma
        half = int(math.ceil(3 * sig))
        offs = np.arange(-half, half + 1)
        total = 0
        for j in range(n_sub):
            dx = trail_px * (j / max(1, n_sub - 1) - 0.5) if n_sub > 1 else 0.0
            cx = xs + dx - sl[1].start
            cy = ys - sl[0].start
            keep = (cx > -half) & (cx < w + half) & (cy > -half) & (cy < h + half)
            if not np.any(keep):
                continue
            cxk, cyk, fk = cx[keep], cy[keep], flux[keep] * (scale / n_sub)
            total = max(total, int(keep.sum()))
            ix = np.floor(cxk).astype(np.int64)
            iy = np.floor(cyk).astype(np.int64)
            px = ix[:, None] + offs[None, :]
            py = iy[:, None] + offs[None, :]
            wx = np.exp(-0.5 * ((px + 0.5 - cxk[:, None]) / sig) ** 2)
            wy = np.exp(-0.5 * ((py + 0.5 - cyk[:, None]) / sig) ** 2)
            wx /= wx.sum(axis=1, keepdims=True)
            wy /= wy.sum(axis=1, keepdims=True)
            stamps = (fk[:, None, None] * wy[:, :, None] * wx[:, None, :]).astype(np.float32)
            # one slice-add per star: much faster than ufunc.at for a few thousand stamps
            for k in range(len(cxk)):
                x0, y0 = int(px[k, 0]), int(py[k, 0])
                x1, y1 = x0 + len(offs), y0 + len(offs)
                cx0, cy0 = max(x0, 0), max(y0, 0)
                cx1, cy1 = min(x1, w), min(y1, h)
                if cx0 >= cx1 or cy0 >= cy1:
                    continue
                img[cy0:cy1, cx0:cx1] += stamps[k, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        return total

    def _stars_cached(self, field_id: int, tracking: bool, dec_deg: float, exposure: float,
                      sl: tuple[slice, slice]) -> tuple[np.ndarray, int]:
        """Star image at unit scale; the last one is kept because pointing rarely changes between frames."""
        trail = 0.0 if tracking else round(exposure * math.cos(math.radians(dec_deg)), 3)
        key = (field_id, sl[0].start, sl[0].stop, sl[1].start, sl[1].stop, trail)
        if self._star_key != key:
            img = np.zeros((sl[0].stop - sl[0].start, sl[1].stop - sl[1].start), dtype=np.float32)
            n = self._add_stars(img, field_id, tracking, dec_deg, exposure, sl, 1.0)
            self._star_cache, self._star_key = (img, n), key
        assert self._star_cache is not None
        return self._star_cache
