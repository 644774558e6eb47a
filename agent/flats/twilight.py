"""The twilight sky as past nights measured it: sky rate (ADU/s) against the Sun's altitude, per filter.

Used before dusk to predict how many flats of each filter fit in tonight's window, and during the
run to guess the first exposure of a filter. Rates are kept per camera set-up (camera, gain, binning,
readout mode) because they are in ADU.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.flats.trained import TWILIGHT_FILE, read_json, write_json_atomic

SunAltitude = Callable[[dt.datetime], float]

# Sky light through common filters relative to luminance, used only until a night has measured them.
TYPICAL_SHARE = {"l": 1.0, "lum": 1.0, "clear": 1.0, "r": 0.3, "g": 0.3, "b": 0.3, "red": 0.3, "green": 0.3,
                 "blue": 0.3, "ha": 0.03, "oiii": 0.03, "sii": 0.03, "h-alpha": 0.03, "o3": 0.03, "s2": 0.03}
# A typical twilight: log10 sky rate falls ~0.22 per degree of Sun altitude.
TYPICAL_SLOPE_DEX_PER_DEG = 0.22


def typical_share(filter_name: str) -> float:
    return TYPICAL_SHARE.get(filter_name.strip().lower(), 0.3)


@dataclass
class TwilightModel:
    """Samples (Sun altitude, log10 rate) per filter for one camera set-up, plus the frame overhead seen."""

    setup: str
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    overheads: list[float] = field(default_factory=list)

    def add(self, filter_name: str, sun_altitude: float, rate: float) -> None:
        if rate > 0 and math.isfinite(rate):
            self.samples.setdefault(filter_name, []).append((round(sun_altitude, 3), round(math.log10(rate), 5)))

    def knows(self, filter_name: str) -> bool:
        return len(self.samples.get(filter_name, [])) >= 3

    def log_rate(self, filter_name: str, sun_altitude: float) -> float | None:
        """log10 sky rate at this Sun altitude: a locally weighted line through the samples (1.5° scale)."""
        pts = self.samples.get(filter_name)
        if not pts or len(pts) < 3:
            return None
        a = np.array(pts, dtype=float)
        alt, y = a[:, 0], a[:, 1]
        w = np.exp(-0.5 * ((alt - sun_altitude) / 1.5) ** 2) + 1e-6
        if np.ptp(alt) < 0.5:  # too narrow a range for a slope: use the typical one
            return float(np.average(y, weights=w) + TYPICAL_SLOPE_DEX_PER_DEG * (sun_altitude - np.average(alt, weights=w)))
        coef = np.polyfit(alt, y, 1, w=np.sqrt(w))
        return float(np.polyval(coef, sun_altitude))

    def rate(self, filter_name: str, sun_altitude: float) -> float | None:
        lr = self.log_rate(filter_name, sun_altitude)
        return None if lr is None else 10.0**lr

    def estimated_rate(self, filter_name: str, sun_altitude: float) -> float | None:
        """The learned rate, or for a filter never measured: a measured filter's rate × typical filter shares."""
        own = self.rate(filter_name, sun_altitude)
        if own is not None:
            return own
        known = [f for f in self.samples if self.knows(f)]
        if not known:
            return None
        ref = max(known, key=lambda f: len(self.samples[f]))
        ref_rate = self.rate(ref, sun_altitude)
        return None if ref_rate is None else ref_rate * typical_share(filter_name) / typical_share(ref)

    def share(self, filter_name: str) -> float:
        """How much sky light a filter passes, for ordering filters (learned when possible)."""
        rate = self.estimated_rate(filter_name, -6.0)
        return rate if rate is not None else typical_share(filter_name)

    def slope(self, sun_altitude: float) -> float:
        """d log10(rate) / d altitude near this altitude, from any filter that knows it."""
        slopes = []
        for name in self.samples:
            lo, hi = self.log_rate(name, sun_altitude - 0.5), self.log_rate(name, sun_altitude + 0.5)
            if lo is not None and hi is not None:
                slopes.append(hi - lo)
        return float(np.median(slopes)) if slopes else TYPICAL_SLOPE_DEX_PER_DEG

    @property
    def overhead(self) -> float | None:
        """Median seconds between the end of one flat and the start of the next (download, wheel)."""
        return float(np.median(self.overheads[-200:])) if self.overheads else None

    def to_dict(self) -> dict[str, object]:
        return {"samples": {k: [list(p) for p in v[-2000:]] for k, v in self.samples.items()},
                "overheads": self.overheads[-200:]}

    @classmethod
    def from_dict(cls, setup: str, data: Mapping[str, Any]) -> TwilightModel:
        raw: dict[str, Any] = data.get("samples", {})
        samples = {str(k): [(float(p[0]), float(p[1])) for p in v] for k, v in raw.items()}
        overheads = [float(x) for x in data.get("overheads", [])]
        return cls(setup, samples, overheads)


class TwilightStore:
    """All learned twilight models, one JSON file under the data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = read_json(path)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> TwilightStore:
        return cls(data_dir / "flats" / TWILIGHT_FILE)

    def model(self, setup: str) -> TwilightModel:
        entry = self._data.get(setup)
        return TwilightModel.from_dict(setup, entry) if isinstance(entry, dict) else TwilightModel(setup)

    def save(self, model: TwilightModel) -> None:
        self._data[model.setup] = model.to_dict()
        write_json_atomic(self.path, self._data)


# ---------------------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class SkyPlanLimits:
    """What the sky-flat run may do: exposure range and the target signal above the pedestal."""

    exposure_min: float
    exposure_max: float
    signal: float  # target level minus pedestal, ADU


def exposure_for(rate_at_start: float, k_per_s: float, signal: float) -> float:
    """Exposure that collects `signal` from a sky whose rate is `rate_at_start`·exp(k·t); inf if it cannot."""
    if rate_at_start <= 0:
        return math.inf
    if abs(k_per_s) < 1e-12:
        return signal / rate_at_start
    arg = 1.0 + k_per_s * signal / rate_at_start
    if arg <= 0:
        return math.inf  # a dusk sky fading faster than the exposure can collect
    return math.log(arg) / k_per_s


def filter_order(filters: Sequence[str], period: str, share: Callable[[str], float]) -> list[str]:
    """The filter needing the most light first at dusk (the sky is brightest then) and last at dawn."""
    dusk = sorted(filters, key=share)
    return dusk if period == "dusk" else dusk[::-1]


def predict_counts(
    model: TwilightModel,
    window: tuple[dt.datetime, dt.datetime],
    period: str,
    sun_altitude: SunAltitude,
    needs: Mapping[str, int],
    limits: SkyPlanLimits,
    overhead: float | None = None,
) -> dict[str, int]:
    """How many flats of each filter tonight's window gives, following the run's own rules on the model."""
    start, end = window
    gap = overhead if overhead is not None else (model.overhead or 5.0)
    order = filter_order([f for f in needs if needs[f] > 0], period, model.share)
    got = {f: 0 for f in needs}
    stopped: set[str] = set()
    t = start
    while t < end:
        chosen = None
        for f in order:
            if f in stopped or got[f] >= needs[f]:
                continue
            e = _model_exposure(model, f, t, sun_altitude, limits.signal)
            if e is None:
                stopped.add(f)
                continue
            if e > limits.exposure_max:
                if period == "dusk":
                    stopped.add(f)
                continue
            if e < limits.exposure_min:
                if period == "dawn":
                    stopped.add(f)
                continue
            chosen = (f, e)
            break
        if chosen is None:
            if all(f in stopped or got[f] >= needs[f] for f in order):
                break
            t += dt.timedelta(seconds=15)
            continue
        f, e = chosen
        if t + dt.timedelta(seconds=e) > end:
            break
        got[f] += 1
        t += dt.timedelta(seconds=e + gap)
    return got


def _model_exposure(model: TwilightModel, f: str, t: dt.datetime, sun: SunAltitude, signal: float) -> float | None:
    alt = sun(t)
    rate = model.estimated_rate(f, alt)
    if rate is None:
        return None
    d_alt = (sun(t + dt.timedelta(seconds=60)) - sun(t - dt.timedelta(seconds=60))) / 120.0
    k = model.slope(alt) * math.log(10.0) * d_alt
    return exposure_for(rate, k, signal)
