"""Ground-truth sensor, optics and sky model behind the simulated observatory: `SimModel` renders frames.

Pure numpy and deterministic for a given seed: every fixed pattern (bias, dark current, hot pixels,
amp glow, PRNU, vignetting, dust) is drawn once from the seed and exposed through `truth()`, so
calibration code can be checked against the maps that made the frames.

The model is built in layers, one idea each: `sensor` (electronics and silicon), `optics` (filters,
telescope, panel, dust), `sky` (sky brightness and stars), `presets` (the camera catalogue); this
module turns a scene into a frame (light, noise, binning, ADC) and `truth` exposes the maps.

Units used throughout (see docs/simulator.md):
- electrons (e-) inside the sensor; output ADU are 16-bit values as drivers deliver them: the
  native ADC value times `adc_scale` = 2**(16 - bit_depth).
- `gain_e_per_adu(gain)` is e- per *output* (16-bit) ADU.
- dark current and amp glow are given at `spec.reference_temp_c` and double every
  `spec.dark_doubling_c` degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from agent.errors import ConfigError
from indi_sim.optics import CFA_RESPONSE, DEFAULT_FILTERS, FilterSpec, Optics
from indi_sim.presets import PRESETS
from indi_sim.sensor import HotPixels, ReadoutMode, SensorSpec
from indi_sim.sky import SkyModel, sky_flux_e_s
from indi_sim.truth import SensorTruth

__all__ = [
    "CFA_RESPONSE", "DEFAULT_FILTERS", "FRAME_TYPES", "PRESETS", "FilterSpec", "HotPixels", "Optics", "ReadoutMode",
    "RenderInfo", "Scene", "SensorSpec", "SensorTruth", "SimModel", "sky_flux_e_s",
]

FRAME_TYPES = ("light", "bias", "dark", "flat")


@dataclass
class Scene:
    """What is in front of the sensor for one exposure (everything the other devices control)."""

    filter: str = "L"
    panel_brightness: float = 0.0  # 0 = light off
    cap_closed: bool = False
    sun_altitude: float = -90.0
    light_leak: float = 0.0  # fraction of the open-sky flux reaching the sensor with the cap closed
    cloud_cover: float = 0.0  # 0 clear .. 1 overcast (dims stars, changes the sky: sky.py)
    field_id: int = 0  # which patch of sky (the mount pointing); selects the star field
    tracking: bool = True
    dec_deg: float = 0.0  # for the trailing rate when tracking is off


@dataclass
class RenderInfo:
    """Per-frame facts the truth maps cannot hold (random events)."""

    exposure: float = 0.0
    cosmic_rays: list[tuple[int, int]] = field(default_factory=list)
    stars_rendered: int = 0


class SimModel(SkyModel):
    """A seeded camera + optics + sky. `render()` makes frames, `truth()` exposes what made them."""

    def __init__(
        self,
        preset: str = "small",
        seed: int = 1,
        width: int | None = None,
        height: int | None = None,
        filters: tuple[FilterSpec, ...] = DEFAULT_FILTERS,
        optics: Optics | None = None,
        cosmic_rays: bool = True,
        **spec_overrides: object,
    ) -> None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown simulator preset {preset!r}; use one of {', '.join(PRESETS)}")
        spec = PRESETS[preset]
        changes: dict[str, object] = dict(spec_overrides)
        if width is not None:
            changes["width"] = int(width)
        if height is not None:
            changes["height"] = int(height)
        spec = replace(spec, **changes)  # type: ignore[arg-type]
        if spec.width < 8 or spec.height < 8:
            raise ConfigError(f"sensor size {spec.width}x{spec.height} is too small; use at least 8x8")
        super().__init__(spec, seed, filters, optics or Optics())
        self.preset = preset
        self.cosmic_rays = cosmic_rays
        self._frame_rng = np.random.default_rng([self.seed, 1000])
        self.last_render = RenderInfo()

    # ------------------------------------------------------------------ rendering
    def photon_rate(self, frame_type: str, scene: Scene, exposure: float, sl: tuple[slice, slice]) -> np.ndarray | None:
        """Light reaching each pixel in e-/s (None when dark)."""
        if frame_type in ("bias", "dark") and self.spec.shutter:
            return None
        f = scene.filter
        if scene.cap_closed:
            leak = scene.light_leak * self.sky_flux(scene.sun_altitude, f, scene.cloud_cover)
            uniform = self.panel_flux(scene.panel_brightness, f) + leak
            if uniform <= 0:
                return None
            return self.flat_shape(f, "panel")[sl] * np.float32(uniform)
        sky = self.sky_flux(scene.sun_altitude, f, scene.cloud_cover)  # clouds: sky.py
        rate = self._sky_gradient[sl] * np.float32(sky)
        stars, self.last_render.stars_rendered = self._stars_cached(scene.field_id, scene.tracking, scene.dec_deg,
                                                                     exposure, sl)
        rate += stars * np.float32(self.filter_spec(f).transmission * self.star_transmission(scene.cloud_cover))
        rate *= self.flat_shape(f, "sky")[sl]
        return rate

    def expected_electrons(
        self, frame_type: str, exposure: float, temperature: float, scene: Scene, sl: tuple[slice, slice]
    ) -> np.ndarray:
        electrons = self.dark_current_ref[sl] * np.float32(exposure * self.thermal_factor(temperature))
        if self.spec.amp_glow_e > 0:
            glow = exposure**self.spec.amp_glow_exponent * self.thermal_factor(temperature)
            electrons += self.amp_glow_map[sl] * np.float32(glow)
        rate = self.photon_rate(frame_type, scene, exposure, sl)
        if rate is not None:
            rate *= np.float32(exposure)
            electrons += rate
        return electrons

    def render(
        self,
        frame_type: str = "light",
        exposure: float = 1.0,
        temperature: float = 0.0,
        gain: float | None = None,
        offset: float | None = None,
        binning: int = 1,
        filter: str = "L",
        panel_brightness: float = 0.0,
        cap_closed: bool = False,
        sun_altitude: float = -90.0,
        readout_mode: str | None = None,
        light_leak: float = 0.0,
        cloud_cover: float = 0.0,
        field_id: int = 0,
        tracking: bool = True,
        dec_deg: float = 0.0,
        roi: tuple[int, int, int, int] | None = None,
        noise: bool = True,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Render one frame as the driver would deliver it: uint16, native ADU x adc_scale.

        `roi` is (x, y, width, height) in unbinned pixels; `noise=False` gives the expectation
        (rounded to ADU) without shot noise, read noise or cosmic rays.
        """
        s = self.spec
        if frame_type not in FRAME_TYPES:
            raise ConfigError(f"unknown frame type {frame_type!r}; use one of {', '.join(FRAME_TYPES)}")
        gain = s.gain_default if gain is None else gain
        offset = s.offset_default if offset is None else offset
        if frame_type == "bias":
            exposure = s.min_exposure_s
        exposure = float(min(max(exposure, 0.0), s.max_exposure_s))
        b = int(binning)
        if b < 1 or b > 4:
            raise ConfigError(f"binning {b} is not supported; use 1 to 4")
        x0, y0, w, h = roi if roi is not None else (0, 0, s.width, s.height)
        x0, y0 = max(0, int(x0)), max(0, int(y0))
        w = min(int(w), s.width - x0) // b * b
        h = min(int(h), s.height - y0) // b * b
        if w < b or h < b:
            raise ConfigError(f"frame {roi} is empty on a {s.width}x{s.height} sensor; fix CCD_FRAME")
        sl = (slice(y0, y0 + h), slice(x0, x0 + w))
        rng = rng or self._frame_rng
        self.last_render = RenderInfo(exposure=exposure)
        scene = Scene(filter=filter, panel_brightness=panel_brightness, cap_closed=cap_closed, sun_altitude=sun_altitude,
                      light_leak=light_leak, cloud_cover=cloud_cover, field_id=field_id, tracking=tracking, dec_deg=dec_deg)
        electrons = self.expected_electrons(frame_type, exposure, temperature, scene, sl)
        if noise and self.cosmic_rays:
            self._add_cosmic_rays(electrons, exposure, rng)
        g = np.float32(self.gain_e_per_adu(gain))
        pedestal = np.float32(self.pedestal_adu(offset, readout_mode))
        bias = self.bias_pattern(readout_mode)[sl]
        rn_adu = np.float32(self.read_noise_e(gain, readout_mode)) / g
        full_well_adu = np.float32(s.full_well_e) / g
        if s.kind == "ccd" and b > 1:
            # charge binning: sum in the register, one read per binned pixel
            np.minimum(electrons, np.float32(s.full_well_e), out=electrons)
            electrons = _bin_sum(electrons, b)
            signal = electrons / g
            if noise:
                signal += _noise(signal, g, rn_adu, rng)
            np.minimum(signal, 2 * full_well_adu, out=signal)  # output register well
            adu = signal + pedestal + _bin_mean(bias, b)
        else:
            signal = electrons / g
            if noise:
                signal += _noise(signal, g, rn_adu, rng)
            np.minimum(signal, full_well_adu, out=signal)
            signal += pedestal
            signal += bias
            adu = _bin_mean(signal, b) if b > 1 else signal
        return _quantize(adu, s.adc_scale, s.adc_max_native)

    def expected_adu(self, frame_type: str = "light", exposure: float = 1.0, temperature: float = 0.0,
                     gain: float | None = None, offset: float | None = None, filter: str = "L",
                     readout_mode: str | None = None, **scene: object) -> np.ndarray:
        """Noise-free mean frame in output ADU (float32, binning 1, full sensor), before quantisation."""
        s = self.spec
        gain = s.gain_default if gain is None else gain
        offset = s.offset_default if offset is None else offset
        if frame_type == "bias":
            exposure = s.min_exposure_s
        sl = (slice(0, s.height), slice(0, s.width))
        e = self.expected_electrons(frame_type, exposure, temperature, Scene(filter=filter, **scene), sl)  # type: ignore[arg-type]
        np.minimum(e, np.float32(s.full_well_e), out=e)
        return e / np.float32(self.gain_e_per_adu(gain)) + self.pedestal_adu(offset, readout_mode) + self.bias_pattern(readout_mode)

    def _add_cosmic_rays(self, electrons: np.ndarray, exposure: float, rng: np.random.Generator) -> None:
        """Muon hits, about 1 per cm^2 per minute at sea level: short tracks of a few thousand e-."""
        h, w = electrons.shape
        area_cm2 = h * w * (self.spec.pixel_size_um * 1e-4) ** 2
        n = int(rng.poisson(area_cm2 * exposure / 60.0))
        for _ in range(n):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            length = int(rng.integers(1, 5))
            dx, dy = (1, 0) if rng.uniform() < 0.5 else (0, 1)
            energy = float(rng.uniform(1000, 5000))
            for k in range(length):
                yy, xx = y + k * dy, x + k * dx
                if yy < h and xx < w:
                    electrons[yy, xx] += energy / length
                    self.last_render.cosmic_rays.append((yy, xx))

    def truth(self) -> SensorTruth:
        return SensorTruth(self)


def _noise(signal_adu: np.ndarray, g: np.float32, rn_adu: np.float32, rng: np.random.Generator) -> np.ndarray:
    """Shot noise and read noise in one Gaussian draw: variance = signal_e / g**2 + read_noise_adu**2.

    Shot noise is Gaussian with the Poisson variance; with read noise added the difference from an
    exact Poisson draw is invisible in calibration statistics, and it keeps a full-size frame fast.
    """
    var = np.maximum(signal_adu, 0.0)
    var /= g
    var += rn_adu * rn_adu
    np.sqrt(var, out=var)
    var *= rng.standard_normal(signal_adu.shape, dtype=np.float32)
    return var


def _bin_sum(a: np.ndarray, b: int) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // b, b, w // b, b).sum(axis=(1, 3), dtype=np.float32)


def _bin_mean(a: np.ndarray, b: int) -> np.ndarray:
    return _bin_sum(a, b) / np.float32(b * b)


def _quantize(adu: np.ndarray, scale: int, max_native: int) -> np.ndarray:
    native = adu if scale == 1 else np.multiply(adu, np.float32(1.0 / scale), out=adu)
    np.rint(native, out=native)
    np.clip(native, 0, max_native, out=native)
    out = native.astype(np.uint16)
    if scale > 1:
        out *= np.uint16(scale)
    return out
