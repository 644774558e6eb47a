"""The light path in front of the sensor: filters, telescope, flat panel and the dust and vignetting
they add. Everything here shapes light; the sensor's own response (PRNU) comes from `SensorModel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from agent.errors import ConfigError
from indi_sim.sensor import SensorModel, SensorSpec

# Colour response of the CFA channels (R, G, B) to each light source; mono sensors use 1.
CFA_RESPONSE = {
    "panel": (0.55, 1.0, 0.75),
    "sky": (0.50, 1.0, 1.20),
}


@dataclass(frozen=True)
class FilterSpec:
    name: str
    transmission: float  # fraction of broadband (L) flux passed, for sky and panel light


DEFAULT_FILTERS: tuple[FilterSpec, ...] = (
    FilterSpec("L", 1.0), FilterSpec("R", 0.33), FilterSpec("G", 0.36), FilterSpec("B", 0.30),
    FilterSpec("Ha", 0.035), FilterSpec("OIII", 0.04), FilterSpec("SII", 0.03),
)


@dataclass(frozen=True)
class Optics:
    focal_length_mm: float = 400.0
    vignetting: float = 0.25  # fractional loss at the corners
    sensor_dust_count: int = 3  # donuts on the sensor window, the same in every filter
    filter_dust_count: int = 4  # donuts on each filter, different per filter
    panel_flux_e_s: float = 10000.0  # per 3.76 um pixel, L filter, panel brightness at maximum
    panel_max_brightness: int = 255
    star_density_per_deg2: float = 1000.0
    sky_gradient: tuple[float, float] = (0.08, 0.04)  # fractional change across x and y
    # clouds (sky.py): star light passed by full cover (0.02 = 4.2 mag), and the overcast sky's
    # brightness relative to clear: darker in daylight and twilight, brighter at night (clouds
    # reflect the ground's light back down, as over any suburb)
    cloud_star_transmission: float = 0.02
    cloud_sky_day: float = 0.4
    cloud_sky_night: float = 2.5


class OpticsModel(SensorModel):
    """A sensor behind a telescope and a filter wheel, with a flat panel that can cover the aperture."""

    def __init__(self, spec: SensorSpec, seed: int, filters: tuple[FilterSpec, ...], optics: Optics) -> None:
        super().__init__(spec, seed)
        self.filters = tuple(filters)
        self.optics = optics

    def filter_spec(self, name: str) -> FilterSpec:
        for f in self.filters:
            if f.name == name:
                return f
        raise ConfigError(f"unknown filter {name!r}; the simulator has {', '.join(f.name for f in self.filters)}")

    def pixel_area_factor(self) -> float:
        return (self.spec.pixel_size_um / 3.76) ** 2

    def panel_flux(self, brightness: float, filter_name: str) -> float:
        o = self.optics
        b = min(max(float(brightness), 0.0), float(o.panel_max_brightness))
        return o.panel_flux_e_s * (b / o.panel_max_brightness) * self.filter_spec(filter_name).transmission * self.pixel_area_factor()

    def plate_scale_arcsec(self) -> float:
        return 206.265 * self.spec.pixel_size_um / self.optics.focal_length_mm

    # ------------------------------------------------------------------ fixed maps
    def _filter_index(self, filter_name: str) -> int:
        return [f.name for f in self.filters].index(self.filter_spec(filter_name).name)

    def vignetting(self, filter_name: str) -> np.ndarray:
        key = ("vig", filter_name)
        if key not in self._cache:
            idx = self._filter_index(filter_name)
            rng = self._rng(5, idx)
            s = self.spec
            y, x = self._yx
            cx = (s.width - 1) / 2 + rng.uniform(-0.02, 0.02) * s.width
            cy = (s.height - 1) / 2 + rng.uniform(-0.02, 0.02) * s.height
            rmax = math.hypot(s.width / 2, s.height / 2)
            r2 = ((x - cx) ** 2 + (y - cy) ** 2) / rmax**2
            strength = self.optics.vignetting * (1.0 + rng.uniform(-0.1, 0.1))
            self._cache[key] = (1.0 - strength * (0.7 * r2 + 0.3 * r2 * r2)).astype(np.float32)
        return self._cache[key]

    def _donuts(self, rng: np.random.Generator, count: int, radius_frac: tuple[float, float]) -> np.ndarray:
        s = self.spec
        y, x = self._yx
        out = np.ones((s.height, s.width), dtype=np.float32)
        size = min(s.width, s.height)
        for _ in range(count):
            cx = rng.uniform(0.1, 0.9) * s.width
            cy = rng.uniform(0.1, 0.9) * s.height
            r_out = max(2.0, rng.uniform(*radius_frac) * size)
            r_in = r_out * rng.uniform(0.35, 0.55)
            depth = rng.uniform(0.03, 0.09)
            x0, x1 = int(max(0, cx - r_out - 3)), int(min(s.width, cx + r_out + 4))
            y0, y1 = int(max(0, cy - r_out - 3)), int(min(s.height, cy + r_out + 4))
            r = np.sqrt((x[:, x0:x1] - cx) ** 2 + (y[y0:y1, :] - cy) ** 2)
            edge = max(1.0, 0.12 * r_out)
            ring = (1.0 / (1.0 + np.exp((r - r_out) / edge))) * (1.0 / (1.0 + np.exp((r_in - r) / edge)))
            out[y0:y1, x0:x1] *= (1.0 - depth * ring).astype(np.float32)
        return out

    @cached_property
    def _sensor_dust(self) -> np.ndarray:
        return self._donuts(self._rng(6), self.optics.sensor_dust_count, (0.015, 0.03))

    def dust(self, filter_name: str) -> np.ndarray:
        """Dust donuts: the sensor-window ones (every filter) times this filter's own."""
        key = ("dust", filter_name)
        if key not in self._cache:
            own = self._donuts(self._rng(7, self._filter_index(filter_name)), self.optics.filter_dust_count, (0.04, 0.08))
            self._cache[key] = (self._sensor_dust * own).astype(np.float32)
        return self._cache[key]

    def cfa_response(self, source: str = "panel") -> np.ndarray:
        s = self.spec
        key = ("cfa", source)
        if key not in self._cache:
            if s.cfa is None:
                self._cache[key] = np.ones((s.height, s.width), dtype=np.float32)
            else:
                r, g, b = CFA_RESPONSE[source]
                lut = {"R": r, "G": g, "B": b}
                tile = np.array([[lut[s.cfa[0]], lut[s.cfa[1]]], [lut[s.cfa[2]], lut[s.cfa[3]]]], dtype=np.float32)
                reps = ((s.height + 1) // 2, (s.width + 1) // 2)
                self._cache[key] = np.tile(tile, reps)[: s.height, : s.width].copy()
        return self._cache[key]

    def flat_shape(self, filter_name: str, source: str = "panel") -> np.ndarray:
        key = ("flat", filter_name, source)
        if key not in self._cache:
            shape = self.vignetting(filter_name) * self.dust(filter_name) * self.prnu * self.cfa_response(source)
            self._cache[key] = shape.astype(np.float32)
        return self._cache[key]
