"""Ground-truth sensor, optics and sky model behind the simulated observatory.

Pure numpy and deterministic for a given seed: every fixed pattern (bias, dark current, hot pixels,
amp glow, PRNU, vignetting, dust) is drawn once from the seed and exposed through `truth()`, so
calibration code can be checked against the maps that made the frames.

Units used throughout (see docs/simulator.md):
- electrons (e-) inside the sensor; output ADU are 16-bit values as drivers deliver them: the
  native ADC value times `adc_scale` = 2**(16 - bit_depth).
- `gain_e_per_adu(gain)` is e- per *output* (16-bit) ADU.
- dark current and amp glow are given at `spec.reference_temp_c` and double every
  `spec.dark_doubling_c` degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from agent.errors import ConfigError

FRAME_TYPES = ("light", "bias", "dark", "flat")

# Colour response of the CFA channels (R, G, B) to each light source; mono sensors use 1.
CFA_RESPONSE = {
    "panel": (0.55, 1.0, 0.75),
    "sky": (0.50, 1.0, 1.20),
}


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


PRESETS: dict[str, SensorSpec] = {
    "small": SensorSpec(
        name="Sim small CMOS", width=1024, height=768, pixel_size_um=3.75, bit_depth=12, kind="cmos", cfa=None,
        e_per_adu_native_at_gain0=3.6, gain_max=300, unity_gain=110, read_noise_e_gain0=3.5,
        read_noise_e_unity=1.6, full_well_e=14700.0, offset_max=100, offset_default=10, gain_default=0,
        offset_step_adu=16.0, bias_pixel_sigma_native=0.6, bias_column_sigma_native=0.4,
        dark_current_e_s=0.02, amp_glow_e=1.5,
    ),
    "imx294": SensorSpec(
        name="Sim IMX294", width=4144, height=2822, pixel_size_um=4.63, bit_depth=14, kind="cmos", cfa="RGGB",
        e_per_adu_native_at_gain0=4.0, gain_max=570, unity_gain=120, read_noise_e_gain0=7.3,
        read_noise_e_unity=1.3, full_well_e=65000.0, offset_max=255, offset_default=30, gain_default=120,
        offset_step_adu=4.0, bias_pixel_sigma_native=0.8, bias_column_sigma_native=0.5,
        dark_current_e_s=0.06, amp_glow_e=5.0, amp_glow_exponent=0.75,
    ),
    "imx571": SensorSpec(
        name="Sim IMX571", width=6248, height=4176, pixel_size_um=3.76, bit_depth=16, kind="cmos", cfa=None,
        e_per_adu_native_at_gain0=0.78, gain_max=280, unity_gain=100, read_noise_e_gain0=3.5,
        read_noise_e_unity=1.0, full_well_e=51000.0, offset_max=500, offset_default=50, gain_default=100,
        offset_step_adu=10.0, bias_pixel_sigma_native=2.0, bias_column_sigma_native=1.5,
        dark_current_e_s=0.06, dark_suppression=0.03, amp_glow_e=0.0,
    ),
    "ccd": SensorSpec(
        name="Sim KAF-8300", width=3326, height=2504, pixel_size_um=5.4, bit_depth=16, kind="ccd", cfa=None,
        e_per_adu_native_at_gain0=0.37, gain_max=0, unity_gain=0, read_noise_e_gain0=7.0,
        read_noise_e_unity=7.0, full_well_e=25500.0, offset_max=255, offset_default=100, gain_default=0,
        offset_step_adu=10.0, bias_pixel_sigma_native=3.0, bias_column_sigma_native=2.0,
        dark_current_e_s=0.065, amp_glow_e=0.0, prnu_sigma=0.01, shutter=True, min_exposure_s=0.001,
        readout_modes=(ReadoutMode("READOUT_NORMAL", "Normal"), ReadoutMode("READOUT_FAST", "Fast", 1.6, 5.0)),
        cooler_max_delta_c=40.0, cooler_rate_c_per_min=3.0,
    ),
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


@dataclass(frozen=True)
class HotPixels:
    y: np.ndarray
    x: np.ndarray
    dark_e_s: np.ndarray  # at reference temperature; hot pixels are not suppressed


@dataclass
class Scene:
    """What is in front of the sensor for one exposure (everything the other devices control)."""

    filter: str = "L"
    panel_brightness: float = 0.0  # 0 = light off
    cap_closed: bool = False
    sun_altitude: float = -90.0
    light_leak: float = 0.0  # fraction of the open-sky flux reaching the sensor with the cap closed
    cloud_cover: float = 0.0  # 0 clear .. 1 overcast (fraction of sky and star light lost)
    field_id: int = 0  # which patch of sky (the mount pointing); selects the star field
    tracking: bool = True
    dec_deg: float = 0.0  # for the trailing rate when tracking is off


@dataclass
class RenderInfo:
    """Per-frame facts the truth maps cannot hold (random events)."""

    exposure: float = 0.0
    cosmic_rays: list[tuple[int, int]] = field(default_factory=list)
    stars_rendered: int = 0


class SensorTruth:
    """Every map and law the model uses, at full resolution and binning 1.

    Maps are float32 arrays of shape (height, width). Parameter-dependent quantities are methods.
    """

    def __init__(self, model: SimModel) -> None:
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

    def sky_flux_e_s(self, sun_altitude: float, filter_name: str) -> float:
        return self._m.sky_flux(sun_altitude, filter_name)


class SimModel:
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
        self.preset = preset
        self.spec = spec
        self.seed = int(seed)
        self.filters = tuple(filters)
        self.optics = optics or Optics()
        self.cosmic_rays = cosmic_rays
        self._frame_rng = np.random.default_rng([self.seed, 1000])
        self.last_render = RenderInfo()
        self._cache: dict[tuple[object, ...], np.ndarray] = {}
        self._star_key: tuple[object, ...] | None = None
        self._star_cache: tuple[np.ndarray, int] | None = None

    # ------------------------------------------------------------------ laws
    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def filter_spec(self, name: str) -> FilterSpec:
        for f in self.filters:
            if f.name == name:
                return f
        raise ConfigError(f"unknown filter {name!r}; the simulator has {', '.join(f.name for f in self.filters)}")

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

    def thermal_factor(self, temperature_c: float) -> float:
        return float(2.0 ** ((temperature_c - self.spec.reference_temp_c) / self.spec.dark_doubling_c))

    def pixel_area_factor(self) -> float:
        return (self.spec.pixel_size_um / 3.76) ** 2

    def panel_flux(self, brightness: float, filter_name: str) -> float:
        o = self.optics
        b = min(max(float(brightness), 0.0), float(o.panel_max_brightness))
        return o.panel_flux_e_s * (b / o.panel_max_brightness) * self.filter_spec(filter_name).transmission * self.pixel_area_factor()

    def sky_flux(self, sun_altitude: float, filter_name: str) -> float:
        return sky_flux_e_s(sun_altitude) * self.filter_spec(filter_name).transmission * self.pixel_area_factor()

    def plate_scale_arcsec(self) -> float:
        return 206.265 * self.spec.pixel_size_um / self.optics.focal_length_mm

    # ------------------------------------------------------------------ fixed maps
    @cached_property
    def _yx(self) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.spec.height, self.spec.width
        y = np.arange(h, dtype=np.float32)[:, None]
        x = np.arange(w, dtype=np.float32)[None, :]
        return y, x

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

    @cached_property
    def prnu(self) -> np.ndarray:
        s = self.spec
        rng = self._rng(4)
        return (1.0 + rng.standard_normal((s.height, s.width), dtype=np.float32) * np.float32(s.prnu_sigma)).astype(np.float32)

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

    # ------------------------------------------------------------------ rendering
    def _add_stars(self, img: np.ndarray, scene: Scene, exposure: float, sl: tuple[slice, slice], scale: float) -> int:
        """Add star light (e-/s times `scale`, averaged over the exposure when trailing) into `img`."""
        h, w = img.shape
        xs, ys, flux = self.star_field(scene.field_id)
        if len(xs) == 0:
            return 0
        sigma = 1.4
        trail_px = 0.0
        if not scene.tracking:
            trail_px = 15.041 * math.cos(math.radians(scene.dec_deg)) * exposure / self.plate_scale_arcsec()
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

    def _stars_cached(self, scene: Scene, exposure: float, sl: tuple[slice, slice]) -> tuple[np.ndarray, int]:
        """Star image at unit scale; the last one is kept because pointing rarely changes between frames."""
        trail = 0.0 if scene.tracking else round(exposure * math.cos(math.radians(scene.dec_deg)), 3)
        key = (scene.field_id, sl[0].start, sl[0].stop, sl[1].start, sl[1].stop, trail)
        if self._star_key != key:
            img = np.zeros((sl[0].stop - sl[0].start, sl[1].stop - sl[1].start), dtype=np.float32)
            n = self._add_stars(img, scene, exposure, sl, 1.0)
            self._star_cache, self._star_key = (img, n), key
        assert self._star_cache is not None
        return self._star_cache

    def photon_rate(self, frame_type: str, scene: Scene, exposure: float, sl: tuple[slice, slice]) -> np.ndarray | None:
        """Light reaching each pixel in e-/s (None when dark)."""
        if frame_type in ("bias", "dark") and self.spec.shutter:
            return None
        f = scene.filter
        if scene.cap_closed:
            uniform = self.panel_flux(scene.panel_brightness, f) + scene.light_leak * self.sky_flux(scene.sun_altitude, f)
            if uniform <= 0:
                return None
            return self.flat_shape(f, "panel")[sl] * np.float32(uniform)
        clear = 1.0 - min(max(scene.cloud_cover, 0.0), 1.0)
        sky = self.sky_flux(scene.sun_altitude, f) * clear
        rate = self._sky_gradient[sl] * np.float32(sky)
        stars, self.last_render.stars_rendered = self._stars_cached(scene, exposure, sl)
        rate += stars * np.float32(self.filter_spec(f).transmission * clear)
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
