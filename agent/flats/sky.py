"""Twilight sky flats: predict each exposure from the twilight trend, check every frame, learn the sky.

The run is driven through a `SkyCamera` (expose one flat through a filter) and a `Clock`, so the same
code runs on the simulator model with simulated time in tests and on INDI devices at night.

Exposure: the sky rate follows r(t) = r0·exp(k·t) over a few minutes; k is fitted from the last accepted
frames of all filters (one twilight, one slope), each filter keeps its own level. The exposure that
collects the target signal from a start time t is ln(1 + k·S/r(t))/k, so dusk exposures grow and dawn
ones shrink. A filter stops when its exposure leaves the allowed range.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.clock import Clock
from agent.flats.target import FlatError, FlatTarget, frame_level
from agent.flats.twilight import (
    SkyPlanLimits,
    SunAltitude,
    TwilightModel,
    exposure_for,
    filter_order,
    predict_counts,
)

log = logging.getLogger(__name__)


@dataclass
class SkyShot:
    """One exposed sky flat as the controller sees it."""

    data: np.ndarray
    start: dt.datetime
    exposure: float
    header: object | None = None  # FITS header when it came from a camera


class SkyCamera(Protocol):
    def expose(self, filter_name: str, exposure: float) -> SkyShot: ...


SkySink = Callable[[SkyShot, str], Path | None]


@dataclass(frozen=True)
class FrameChecks:
    """Thresholds for rejecting sky flats (fractions unless said otherwise)."""

    cloud_drop: float = 0.12  # sky rate this much below (or 1.5x this above) the twilight trend
    shape_deviation: float = 0.02  # normalised block medians differ from the other flats'
    star_sigma: float = 6.0  # a pixel this far above its neighbourhood (in MAD sigmas) ...
    star_pixels: float = 2e-4  # ... clustered, over this fraction of the frame: stars
    blocks: int = 8


@dataclass
class SkyFrameRecord:
    filter: str
    start: dt.datetime
    exposure: float
    level: float
    sun_altitude: float
    accepted: bool
    reason: str | None = None
    predicted_rate: float | None = None
    rate: float = 0.0
    path: Path | None = None


@dataclass
class SkyRunReport:
    period: str
    window: tuple[dt.datetime, dt.datetime]
    needs: dict[str, int]
    predicted: dict[str, int]
    records: list[SkyFrameRecord] = field(default_factory=list)
    stopped: dict[str, str] = field(default_factory=dict)

    def accepted(self, filter_name: str | None = None) -> list[SkyFrameRecord]:
        return [r for r in self.records if r.accepted and (filter_name is None or r.filter == filter_name)]

    @property
    def counts(self) -> dict[str, int]:
        return {f: len(self.accepted(f)) for f in self.needs}

    def rejected(self) -> list[SkyFrameRecord]:
        return [r for r in self.records if not r.accepted]


# ------------------------------------------------------------------------------------------ Sun


class SunTrack:
    """Sun altitude over one window from astropy, computed once on a 1-minute grid and interpolated."""

    def __init__(self, lat: float, lon: float, start: dt.datetime, end: dt.datetime, elevation: float = 0.0) -> None:
        from agent import offline

        offline.configure()
        import astropy.units as u
        from astropy.coordinates import AltAz, EarthLocation, get_sun
        from astropy.time import Time
        from astropy.utils import iers

        from agent.sky.iers import earth_orientation_table

        t0 = start - dt.timedelta(minutes=30)
        minutes = int((end - start).total_seconds() / 60) + 61
        self._t0 = t0.timestamp()
        times = Time(t0) + np.arange(minutes + 1) * u.min
        loc = EarthLocation(lat=lat * u.deg, lon=lon * u.deg, height=elevation * u.m)
        self._grid = self._t0 + np.arange(minutes + 1) * 60.0
        with iers.earth_orientation_table.set(earth_orientation_table()):  # cached table: no slow parse
            self._alt = get_sun(times).transform_to(AltAz(obstime=times, location=loc)).alt.deg

    def __call__(self, when: dt.datetime) -> float:
        return float(np.interp(when.timestamp(), self._grid, self._alt))


def find_window(sun: Callable[[dt.datetime], float], around: dt.datetime, hours: float, period: str,
                upper: float, lower: float) -> tuple[dt.datetime, dt.datetime] | None:
    """The stretch of `hours` after `around` with the Sun between lower and upper (dusk: descending)."""
    step = dt.timedelta(seconds=30)
    t, end = around, around + dt.timedelta(hours=hours)
    start_at: dt.datetime | None = None
    while t < end:
        alt = sun(t)
        inside = lower <= alt <= upper
        rising = sun(t + step) > alt
        if inside and start_at is None and (rising == (period == "dawn")):
            start_at = t
        elif start_at is not None and not inside:
            return start_at, t
        t += step
    return None


# ------------------------------------------------------------------------------------------ checks


def _box_mean(a: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size×size box (edges replicated), with cumulative sums: no scipy needed."""
    pad = size // 2
    p = np.pad(a, pad, mode="edge").astype(np.float64)
    c = p.cumsum(0).cumsum(1)
    c = np.pad(c, ((1, 0), (1, 0)))
    h, w = a.shape
    s = c[size:size + h, size:size + w] - c[:h, size:size + w] - c[size:size + h, :w] + c[:h, :w]
    return s / (size * size)


def star_pixels(data: np.ndarray, sigma: float) -> int:
    """Pixels standing out from their neighbourhood by `sigma` MAD-sigmas, with a lit neighbour (not single hot
    pixels or cosmic-ray hits): the signature of stars in a sky flat."""
    img = data.astype(np.float32)
    resid = img - _box_mean(img, 9).astype(np.float32)
    sample = resid[::3, ::3]
    mad = float(np.median(np.abs(sample - np.median(sample)))) * 1.4826
    if mad <= 0:
        return 0
    hot = resid > sigma * mad
    near = np.zeros_like(hot)
    near[1:, :] |= hot[:-1, :]
    near[:-1, :] |= hot[1:, :]
    near[:, 1:] |= hot[:, :-1]
    near[:, :-1] |= hot[:, 1:]
    return int(np.count_nonzero(hot & near))


def block_shape(data: np.ndarray, blocks: int) -> np.ndarray:
    """Block medians normalised by their median: the frame's large-scale shape (vignetting, gradients)."""
    h, w = data.shape
    bh, bw = h // blocks, w // blocks
    cut = data[: bh * blocks, : bw * blocks].astype(np.float32)
    med = np.median(cut.reshape(blocks, bh, blocks, bw).transpose(0, 2, 1, 3).reshape(blocks, blocks, -1), axis=2)
    return med / float(np.median(med))


# ------------------------------------------------------------------------------------------ trend


class TwilightTrend:
    """Tonight's sky: log rate per filter against time, with one shared slope (the twilight)."""

    def __init__(self, t0: dt.datetime, memory_s: float = 900.0) -> None:
        self.t0 = t0
        self.memory_s = memory_s
        self.points: dict[str, list[tuple[float, float]]] = {}

    def _t(self, when: dt.datetime) -> float:
        return (when - self.t0).total_seconds()

    def add(self, f: str, mid: dt.datetime, rate: float) -> None:
        self.points.setdefault(f, []).append((self._t(mid), math.log(rate)))

    def slope(self, now: dt.datetime) -> float | None:
        """Shared d ln(rate)/dt from recent points of every filter with two or more of them."""
        tn = self._t(now)
        num = den = 0.0
        for pts in self.points.values():
            recent = [p for p in pts if tn - p[0] <= self.memory_s][-6:]
            if len(recent) < 2:
                continue
            t = np.array([p[0] for p in recent])
            y = np.array([p[1] for p in recent])
            dt_ = t - t.mean()
            num += float(np.sum(dt_ * (y - y.mean())))
            den += float(np.sum(dt_ * dt_))
        if den < 30.0**2:  # less than ~30 s of baseline
            return None
        return num / den

    def log_rate(self, f: str, when: dt.datetime, k: float) -> float | None:
        pts = self.points.get(f)
        if not pts:
            return None
        recent = pts[-4:]
        tw = self._t(when)
        return float(np.mean([y + k * (tw - t) for t, y in recent]))

    def any_filter(self) -> str | None:
        return max(self.points, key=lambda f: self.points[f][-1][0]) if self.points else None


# ------------------------------------------------------------------------------------------ run


@dataclass
class SkyFlatRun:
    """One dusk or dawn sky-flat session."""

    camera: SkyCamera
    clock: Clock
    sun: SunAltitude
    period: str
    window: tuple[dt.datetime, dt.datetime]
    target: FlatTarget
    exposure_min: float
    exposure_max: float
    model: TwilightModel
    pedestal: float = 0.0
    checks: FrameChecks = field(default_factory=FrameChecks)
    sink: SkySink | None = None
    abort: threading.Event | None = None
    progress: Callable[[SkyFrameRecord], None] | None = None
    overhead_guess: float = 5.0

    def __post_init__(self) -> None:
        if self.period not in ("dusk", "dawn"):
            raise FlatError(f"period must be dusk or dawn, not {self.period!r}")
        if self.exposure_min >= self.exposure_max:
            raise FlatError("exposure_min must be below exposure_max; fix calibration.flats")
        self.trend = TwilightTrend(self.window[0])
        self._shapes: dict[str, list[np.ndarray]] = {}
        self._last_end: dt.datetime | None = None
        self._overheads: list[float] = []
        self._dark: dict[str, tuple[float, float]] = {}
        self._sky_samples: list[tuple[str, float, float]] = []  # (filter, Sun altitude, clear-sky rate)

    @property
    def signal(self) -> float:
        return self.target.level - self.pedestal

    def limits(self) -> SkyPlanLimits:
        return SkyPlanLimits(self.exposure_min, self.exposure_max, self.signal)

    def predict(self, needs: Mapping[str, int]) -> dict[str, int]:
        """Flats per filter the learned model expects tonight (all 0 before the first night)."""
        if not any(self.model.knows(f) for f in self.model.samples):
            return dict.fromkeys(needs, 0)
        return predict_counts(self.model, self.window, self.period, self.sun, needs, self.limits(),
                              self.model.overhead or self.overhead_guess)

    # -- exposure prediction
    def _k(self, when: dt.datetime) -> float:
        k = self.trend.slope(when)
        if k is not None:
            return k
        alt = self.sun(when)
        d_alt = (self.sun(when + dt.timedelta(seconds=60)) - self.sun(when - dt.timedelta(seconds=60))) / 120.0
        return self.model.slope(alt) * math.log(10.0) * d_alt

    def predicted_rate(self, f: str, when: dt.datetime) -> tuple[float | None, str]:
        """Sky rate (ADU/s) for filter f at `when`, and where the estimate came from."""
        k = self._k(when)
        own = self.trend.log_rate(f, when, k)
        if own is not None:
            return math.exp(own), "trend"
        alt = self.sun(when)
        modelled = self.model.estimated_rate(f, alt)
        other = self.trend.any_filter()
        if other is not None:
            ref = self.trend.log_rate(other, when, k)
            assert ref is not None
            # tonight's sky in another filter, scaled by the filters' ratio (learned, else typical)
            ratio = self.model.share(f) / self.model.share(other)
            modelled_other = self.model.estimated_rate(other, alt)
            if modelled is not None and modelled_other:
                ratio = modelled / modelled_other
            return math.exp(ref) * ratio, "other filter"
        if modelled is not None:
            return modelled, "learned model"
        return None, "none"

    def _exposure(self, f: str, start: dt.datetime) -> tuple[float | None, float | None]:
        rate, _ = self.predicted_rate(f, start)
        if rate is None:
            return None, None
        return exposure_for(rate, self._k(start), self.signal), rate

    # -- checks
    def check(self, f: str, shot: SkyShot, level: float, predicted: float | None, source: str) -> str | None:
        """Why this flat must be rejected, or None."""
        t = self.target
        if t.saturated(level) or float(np.mean(shot.data >= t.full_scale * 0.999)) > 0.01:
            return f"saturated (level {t.describe(level)})"
        rate = (level - self.pedestal) / shot.exposure
        c = self.checks
        if predicted is not None and source == "trend":
            ratio = rate / predicted
            if ratio < 1 - c.cloud_drop:
                return f"cloud: sky {100 * (1 - ratio):.0f} % darker than the twilight trend"
            if ratio > 1 + 1.5 * c.cloud_drop:
                return f"sky {100 * (ratio - 1):.0f} % brighter than the twilight trend (cloud lit from below?)"
        if not t.within(level):
            return f"level {t.describe(level)} outside {t.band()}"
        n_star = star_pixels(shot.data, c.star_sigma)
        if n_star > max(5.0, c.star_pixels * shot.data.size):
            return f"stars: {n_star} pixels stand out above the sky"
        shape = block_shape(shot.data, c.blocks)
        seen = self._shapes.get(f, [])
        if len(seen) >= 2:
            ref = np.median(np.stack(seen[-8:]), axis=0)
            dev = float(np.max(np.abs(shape / ref - 1)))
            if dev > c.shape_deviation:
                return f"gradient: shape differs {100 * dev:.1f} % from the other flats"
        return None

    # -- the run
    def run(self, needs: Mapping[str, int]) -> SkyRunReport:
        needs = {f: n for f, n in needs.items() if n > 0}
        report = SkyRunReport(self.period, self.window, dict(needs), self.predict(needs))
        order = filter_order(list(needs), self.period, self.model.share)
        got = dict.fromkeys(needs, 0)
        start, end = self.window
        if self.clock.now() < start:
            self.clock.sleep((start - self.clock.now()).total_seconds(), self.abort)
        probes: dict[str, float] = {}
        while not (self.abort and self.abort.is_set()):
            now = self.clock.now()
            if now >= end:
                break
            open_filters = [f for f in order if got[f] < needs[f] and f not in report.stopped]
            if not open_filters:
                break
            chosen: tuple[str, float, float | None, str] | None = None
            begin = now + dt.timedelta(seconds=self._overhead())
            for f in open_filters:
                e, rate = self._exposure(f, begin)
                source = self.predicted_rate(f, begin)[1] if rate is not None else "probe"
                if e is None:
                    e = probes.get(f, math.sqrt(self.exposure_min * self.exposure_max))
                    source = "probe"
                if e > self.exposure_max:
                    if source == "probe":
                        e = self.exposure_max
                    elif self.period == "dusk":
                        report.stopped[f] = f"sky too dark for {f}: it would need {_secs(e)} > {self.exposure_max:g} s"
                        continue
                    else:
                        continue  # dawn: not bright enough yet
                if e < self.exposure_min:
                    if source == "probe":
                        e = self.exposure_min
                    elif self.period == "dawn":
                        report.stopped[f] = f"sky too bright for {f}: it would need {_secs(e)} < {self.exposure_min:g} s"
                        continue
                    else:
                        continue  # dusk: not dark enough yet
                chosen = (f, e, rate, source)
                break
            if chosen is None:
                if all(f in report.stopped for f in open_filters):
                    break
                self.clock.sleep(15.0, self.abort)
                continue
            f, e, rate, source = chosen
            if self.clock.now() + dt.timedelta(seconds=e) > end:
                report.stopped.setdefault(f, "the window ended")
                break
            record = self._take(f, e, rate, source, probes)
            report.records.append(record)
            if f in self._dark:
                level, longest = self._dark.pop(f)
                if self.period == "dusk":
                    report.stopped[f] = (f"no sky light in {f}: level {self.target.describe(level)} at {longest:g} s "
                                         "(cap closed, dome shut or overcast?)")
                else:
                    self.clock.sleep(60.0, self.abort)  # dawn: the sky will brighten
            if record.accepted:
                got[f] += 1
            if self.progress:
                self.progress(record)
        for f in needs:
            if got[f] < needs[f] and f not in report.stopped:
                report.stopped[f] = "the window ended" if self.clock.now() >= end else "stopped"
        self._learn(report)
        return report

    def _overhead(self) -> float:
        return float(np.median(self._overheads[-10:])) if self._overheads else (self.model.overhead or self.overhead_guess)

    def _take(self, f: str, e: float, rate: float | None, source: str, probes: dict[str, float]) -> SkyFrameRecord:
        shot = self.camera.expose(f, e)
        if self._last_end is not None:
            self._overheads.append(max(0.0, (shot.start - self._last_end).total_seconds()))
        self._last_end = shot.start + dt.timedelta(seconds=shot.exposure)
        level = frame_level(shot.data)
        mid = shot.start + dt.timedelta(seconds=shot.exposure / 2)
        alt = self.sun(mid)
        measured = (level - self.pedestal) / shot.exposure
        predicted_now = None
        if rate is not None:  # the rate predicted for the start; compare at the middle
            predicted_now = rate * math.exp(self._k(shot.start) * shot.exposure / 2)
        reason = self.check(f, shot, level, predicted_now, source)
        informative = not self.target.saturated(level) and (level - self.pedestal) > 0.02 * self.signal
        if informative and not (reason or "").startswith(("cloud", "sky ")):
            self.trend.add(f, mid, measured)
            self._sky_samples.append((f, alt, measured))
        elif source == "probe":
            probes[f] = e / 10 if self.target.saturated(level) else e * 10
            if not self.target.saturated(level) and e >= self.exposure_max:
                self._dark[f] = (level, e)
        record = SkyFrameRecord(f, shot.start, shot.exposure, level, alt, reason is None, reason,
                                predicted_now, measured)
        if reason is None:
            self._shapes.setdefault(f, []).append(block_shape(shot.data, self.checks.blocks))
            if self.sink is not None:
                record.path = self.sink(shot, f)
        else:
            log.info("sky flat %s %.2f s rejected: %s", f, e, reason)
        return record

    def _learn(self, report: SkyRunReport) -> None:
        """Add tonight's clear-sky rates and overheads to the model (the caller saves it)."""
        for f, alt, rate in self._sky_samples:
            self.model.add(f, alt, rate)
        self.model.overheads.extend(round(x, 3) for x in self._overheads)


def _secs(e: float) -> str:
    return "forever" if math.isinf(e) else f"{e:.3g} s"
