"""`SensorTruth`: the maps and laws that made a model's frames, for checking calibration against them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from indi_sim.sensor import HotPixels
from indi_sim.sky import SkyModel, cloud_sky_factor


class SensorTruth:
    """Every map and law the model uses, at full resolution and binning 1.

    Maps are float32 arrays of shape (height, width). Parameter-dependent quantities are methods.
    """

    def __init__(self, model: SkyModel) -> None:
        self._m = model
        self.spec = model.spec
        self.filters = {f.name: f.transmission for f in model.filters}

    # -- electronics
    def gain_e_per_adu(self, gain: float) -> float:
        return self._m.gain_e_per_adu(gain)

    def read_noise_e(self, gain: float, readout_mode: str | None = None) -> float:
        return self._m.read_noise_e(gain, readout_mode)

    def read_noise_adu(self, gain: float, readout_mode: str | None = None) -> float:
        return self._m.read_noise_e(gain, readout_mode) / self._m.gain_e_per_adu(gain)

    def pedestal_adu(self, offset: float, readout_mode: str | None = None) -> float:
        return self._m.pedestal_adu(offset, readout_mode)

    def bias_pattern_adu(self, readout_mode: str | None = None) -> np.ndarray:
        """Zero-mean fixed pattern (per-pixel + column) in output ADU."""
        return self._m.bias_pattern(readout_mode)

    def bias_adu(self, offset: float, readout_mode: str | None = None) -> np.ndarray:
        """Expected bias frame (noise-free) in output ADU."""
        return self._m.pedestal_adu(offset, readout_mode) + self._m.bias_pattern(readout_mode)

    # -- thermal
    @property
    def dark_current_e_s(self) -> np.ndarray:
        """Effective dark current per pixel at the reference temperature (suppression and hot pixels applied)."""
        return self._m.dark_current_ref

    def dark_current_at(self, temperature_c: float) -> np.ndarray:
        return self._m.dark_current_ref * self._m.thermal_factor(temperature_c)

    @property
    def hot_pixels(self) -> HotPixels:
        return self._m.hot_pixels

    @property
    def amp_glow_e(self) -> np.ndarray:
        """Amp glow in e- for a 1 s exposure at the reference temperature."""
        return self._m.amp_glow_map

    def amp_glow_at(self, exposure: float, temperature_c: float) -> np.ndarray:
        return self._m.amp_glow_map * (exposure ** self.spec.amp_glow_exponent) * self._m.thermal_factor(temperature_c)

    def dark_electrons(self, exposure: float, temperature_c: float) -> np.ndarray:
        """Mean thermal signal in e- (dark current x exposure + amp glow)."""
        return self.dark_current_at(temperature_c) * exposure + self.amp_glow_at(exposure, temperature_c)

    # -- optics
    @property
    def prnu(self) -> np.ndarray:
        return self._m.prnu

    def vignetting(self, filter_name: str) -> np.ndarray:
        return self._m.vignetting(filter_name)

    def dust(self, filter_name: str) -> np.ndarray:
        return self._m.dust(filter_name)

    def cfa_response(self, source: str = "panel") -> np.ndarray:
        return self._m.cfa_response(source)

    def flat_shape(self, filter_name: str, source: str = "panel") -> np.ndarray:
        """Relative response to uniform light: vignetting x dust x PRNU x CFA response (not normalised)."""
        return self._m.flat_shape(filter_name, source)

    def panel_flux_e_s(self, brightness: float, filter_name: str) -> float:
        """Flux in e-/s per pixel before the flat shape is applied."""
        return self._m.panel_flux(brightness, filter_name)

    def sky_flux_e_s(self, sun_altitude: float, filter_name: str, cloud_cover: float = 0.0) -> float:
        """Sky background in e-/s per pixel before the flat shape and gradient (clouds: `cloud_sky_factor`)."""
        return self._m.sky_flux(sun_altitude, filter_name, cloud_cover)

    # -- clouds
    def star_transmission(self, cloud_cover: float) -> float:
        """Fraction of star light that passes the cloud cover (0..1)."""
        return self._m.star_transmission(cloud_cover)

    def cloud_sky_factor(self, cloud_cover: float, sun_altitude: float) -> float:
        """Sky background under the cloud cover relative to a clear sky at that Sun altitude."""
        return cloud_sky_factor(cloud_cover, sun_altitude, self._m.optics)

    @staticmethod
    def frame_cloud_cover(header: Mapping[str, Any]) -> float:
        """The cloud cover (0..1) a simulated frame was taken under: its SIMCLOUD card (0 if absent)."""
        return float(header.get("SIMCLOUD", 0.0))
