"""The camera sensor: what makes one camera model differ from another, and the laws and fixed maps of
its electronics and silicon (gain, read noise, pedestal, bias pattern, dark current, hot pixels, amp
glow, PRNU).

Every fixed map is drawn once from the seed, keyed by what it is (not by call order), so a map is
the same whichever is asked for first. Units: see `indi_sim.model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from agent.errors import ConfigError


@dataclass(frozen=True)
class ReadoutMode:
    name: str  # INDI switch element name
    label: str  # human label, also the FITS READOUTM value
    read_noise_factor: float = 1.0
    pedestal_shift_native: float = 0.0


@dataclass(frozen=True)
class SensorSpec:
    """Everything that makes one camera model differ from another."""

    name: str
    width: int
    height: int
    pixel_size_um: float
    bit_depth: int
    kind: str  # "cmos" | "ccd"
    cfa: str | None  # "RGGB" or None
    e_per_adu_native_at_gain0: float
    gain_max: int  # gain setting range 0..gain_max (0.1 dB steps, ZWO style); 0 = fixed gain
    unity_gain: int  # setting where read noise stops improving
    read_noise_e_gain0: float
    read_noise_e_unity: float
    full_well_e: float
    offset_max: int
    offset_default: int
    gain_default: int
    offset_step_adu: float  # output ADU of pedestal per offset unit
    bias_pixel_sigma_native: float
    bias_column_sigma_native: float
    dark_current_e_s: float  # mean at reference temperature, before suppression
    dark_doubling_c: float = 6.0
    reference_temp_c: float = 0.0
    dark_suppression: float = 1.0  # fraction of dark current left (CMOS suppression < 1)
    hot_pixel_fraction: float = 2e-4
    hot_pixel_e_s: tuple[float, float] = (0.5, 20.0)  # log-uniform range at reference temperature
    amp_glow_e: float = 0.0  # e- in the glowing corner for a 1 s exposure at reference temperature
    amp_glow_exponent: float = 0.7  # glow grows as exposure**exponent (not linear)
    amp_glow_scale: float = 0.08  # fall-off length as a fraction of the width
    prnu_sigma: float = 0.006
    shutter: bool = False  # mechanical shutter: darks and biases see no light
    min_exposure_s: float = 0.0001
    max_exposure_s: float = 3600.0
    readout_modes: tuple[ReadoutMode, ...] = (
        ReadoutMode("READOUT_NORMAL", "Normal"),
        ReadoutMode("READOUT_LOW_NOISE", "Low noise", 0.7, 2.0),
    )
    cooler_max_delta_c: float = 35.0  # lowest reachable temperature below ambient
    cooler_rate_c_per_min: float = 4.0

    @property
    def adc_scale(self) -> int:
        return 2 ** (16 - self.bit_depth)

    @property
    def adc_max_native(self) -> int:
        return 2**self.bit_depth - 1


@dataclass(frozen=True)
class HotPixels:
    y: np.ndarray
    x: np.ndarray
    dark_e_s: np.ndarray  # at reference temperature; hot pixels are not suppressed


class SensorModel:
    """One seeded sensor: its electronic laws and its fixed maps at full resolution and binning 1."""

    def __init__(self, spec: SensorSpec, seed: int) -> None:
        self.spec = spec
        self.seed = int(seed)
        self._cache: dict[tuple[object, ...], np.ndarray] = {}

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    @cached_property
    def _yx(self) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.spec.height, self.spec.width
        y = np.arange(h, dtype=np.float32)[:, None]
        x = np.arange(w, dtype=np.float32)[None, :]
        return y, x

    # ------------------------------------------------------------------ electronics
    def readout_mode(self, name: str | None) -> ReadoutMode:
        if name is None:
            return self.spec.readout_modes[0]
        for mode in self.spec.readout_modes:
            if name in (mode.name, mode.label):
                return mode
        raise ConfigError(f"unknown readout mode {name!r}; use one of {', '.join(m.name for m in self.spec.readout_modes)}")

    def gain_e_per_adu(self, gain: float) -> float:
        """e- per output ADU: 0.1 dB gain steps (ZWO convention), divided by the 16-bit scaling."""
        gain = min(max(float(gain), 0.0), float(self.spec.gain_max))
        return self.spec.e_per_adu_native_at_gain0 * 10.0 ** (-gain / 200.0) / self.spec.adc_scale

    def read_noise_e(self, gain: float, readout_mode: str | None = None) -> float:
        s = self.spec
        gain = min(max(float(gain), 0.0), float(s.gain_max))
        if s.unity_gain <= 0 or gain >= s.unity_gain:
            rn = s.read_noise_e_unity
        else:
            frac = gain / s.unity_gain
            rn = s.read_noise_e_gain0 + (s.read_noise_e_unity - s.read_noise_e_gain0) * frac
        return rn * self.readout_mode(readout_mode).read_noise_factor

    def pedestal_adu(self, offset: float, readout_mode: str | None = None) -> float:
        mode = self.readout_mode(readout_mode)
        return float(offset) * self.spec.offset_step_adu + mode.pedestal_shift_native * self.spec.adc_scale

    def bias_pattern(self, readout_mode: str | None = None) -> np.ndarray:
        mode = self.readout_mode(readout_mode)
        key = ("bias", mode.name)
        if key not in self._cache:
            idx = [m.name for m in self.spec.readout_modes].index(mode.name)
            rng = self._rng(1, idx)
            s = self.spec
            pix = rng.standard_normal((s.height, s.width), dtype=np.float32) * s.bias_pixel_sigma_native
            col = rng.standard_normal((1, s.width), dtype=np.float32) * s.bias_column_sigma_native
            pattern = (pix + col) * s.adc_scale
            pattern -= pattern.mean(dtype=np.float64)
            self._cache[key] = pattern.astype(np.float32)
        return self._cache[key]

    # ------------------------------------------------------------------ thermal
    def thermal_factor(self, temperature_c: float) -> float:
        return float(2.0 ** ((temperature_c - self.spec.reference_temp_c) / self.spec.dark_doubling_c))

    @cached_property
    def hot_pixels(self) -> HotPixels:
        s = self.spec
        n_pix = s.width * s.height
        rng = self._rng(2)
        count = max(1, int(round(n_pix * s.hot_pixel_fraction)))
        flat_idx = rng.choice(n_pix, size=count, replace=False)
        lo, hi = s.hot_pixel_e_s
        dark = np.exp(rng.uniform(math.log(lo), math.log(hi), size=count)).astype(np.float32)
        y, x = np.divmod(flat_idx, s.width)
        return HotPixels(y=y.astype(np.int64), x=x.astype(np.int64), dark_e_s=dark)

    @cached_property
    def dark_current_ref(self) -> np.ndarray:
        """Per-pixel dark current (lognormal around the spec mean, suppressed) plus hot pixels."""
        s = self.spec
        rng = self._rng(3)
        base = rng.lognormal(mean=-0.5 * 0.3**2, sigma=0.3, size=(s.height, s.width)).astype(np.float32)
        dark = base * np.float32(s.dark_current_e_s * s.dark_suppression)
        hp = self.hot_pixels
        dark[hp.y, hp.x] = hp.dark_e_s
        return dark

    @cached_property
    def amp_glow_map(self) -> np.ndarray:
        """Glow from the readout amplifiers: strongest in the top-right corner, weaker bottom-right."""
        s = self.spec
        if s.amp_glow_e <= 0:
            return np.zeros((s.height, s.width), dtype=np.float32)
        y, x = self._yx
        scale = s.amp_glow_scale * s.width
        d_top = np.sqrt((x - (s.width - 1)) ** 2 + y**2)
        d_bottom = np.sqrt((x - (s.width - 1)) ** 2 + (y - (s.height - 1)) ** 2)
        glow = s.amp_glow_e * (np.exp(-d_top / scale) + 0.4 * np.exp(-d_bottom / scale))
        return glow.astype(np.float32)

    # ------------------------------------------------------------------ silicon response
    @cached_property
    def prnu(self) -> np.ndarray:
        s = self.spec
        rng = self._rng(4)
        return (1.0 + rng.standard_normal((s.height, s.width), dtype=np.float32) * np.float32(s.prnu_sigma)).astype(np.float32)
