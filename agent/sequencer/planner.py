"""Tonight's timeline: twilights, sky-flat windows, target visibility, the light schedule and the gaps.

The Sun's altitude is computed with astroplan on a ten-minute grid across the night and every
crossing of a threshold is refined by bisection to a fraction of a second, which is both faster and
more exact than astroplan's own twilight searches. Targets are sampled every minute. All times are
UTC-aware datetimes; `NightPlan.local` converts for display in the site's time zone.

The night of DATE is the one that begins on the evening of DATE (local time). It is bounded by the
Sun's upper transits around the solar midnight nearest local midnight, so dusk events always fall
before the Sun's lowest point and dawn events after it, even where the Sun never sets or never rises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

from agent import offline
from agent.config import Sequence, Target

SUNSET_ALTITUDE = -0.833
"""Sun's centre at sunset and sunrise: upper limb on the horizon with standard refraction."""

TWILIGHTS: dict[str, float] = {"civil": -6.0, "nautical": -12.0, "astronomical": -18.0}

SUN_STEP_S = 600.0
TARGET_STEP_S = 60.0
MOON_STEP_S = 1800.0
_REFINE_PIECES = (40, 30)  # 600 s -> 15 s -> 0.5 s, then linear interpolation

UTC = dt.UTC


@dataclass(frozen=True)
class Interval:
    start: dt.datetime
    end: dt.datetime

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class SunEvent:
    """A crossing of a Sun altitude; `time` is None when it does not happen tonight, with `reason`."""

    name: str
    altitude: float
    time: dt.datetime | None
    reason: str | None = None


@dataclass(frozen=True)
class SkyFlatWindow:
    """When the Sun is within the sky-flat band, at dusk or at dawn."""

    period: Literal["dusk", "dawn"]
    start: dt.datetime | None
    end: dt.datetime | None
    reason: str | None = None


@dataclass(frozen=True)
class LightConfig:
    """The configuration key of the lights one exposure entry produces (see the design brief)."""

    camera: str
    sensor: str
    gain: int | None
    offset: int | None
    binning: int
    readout_mode: str | None
    bit_depth: int | None
    set_point: float | None
    filter: str
    exposure: float

    def settings(self) -> str:
        """Camera settings in words, e.g. 'gain 100 offset 50 bin1 -10C'."""
        parts = []
        if self.gain is not None:
            parts.append(f"gain {self.gain}")
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        parts.append(f"bin{self.binning}")
        if self.readout_mode is not None:
            parts.append(f"mode {self.readout_mode}")
        parts.append(f"{self.set_point:g}C" if self.set_point is not None else "uncooled")
        return " ".join(parts)

    def dark_label(self) -> str:
        return f"darks: {self.exposure:g}s {self.settings()}"


@dataclass(frozen=True)
class Visibility:
    """When a target satisfies its constraints in darkness tonight; `reason` says why never."""

    target: str
    intervals: tuple[Interval, ...]
    reason: str | None = None


@dataclass(frozen=True)
class Block:
    """`count` lights of `exposure` s through `filter`; `start` includes `setup` s of slewing/centring."""

    target: str
    filter: str
    exposure: float
    count: int
    start: dt.datetime
    end: dt.datetime
    setup: float
    config: LightConfig


@dataclass(frozen=True)
class Shortfall:
    """Frames of an exposure entry that did not fit into tonight's schedule."""

    target: str
    filter: str
    exposure: float
    missing: int
    requested: int


@dataclass(frozen=True)
class Gap:
    """Idle time in the night long enough for calibration frames; `items` say which."""

    start: dt.datetime
    end: dt.datetime
    label: str
    items: tuple[str, ...]

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start


NeedsFn = Callable[[Seq[LightConfig], dt.datetime, dt.datetime], Seq[str]]
"""Calibration work wanted in a gap: called once per gap, in time order, with tonight's light configurations."""


@dataclass(frozen=True)
class Tracks:
    """Altitude curves for plots: UTC unix seconds, Sun altitude, and each target's altitude."""

    sun_times: np.ndarray
    sun_altitude: np.ndarray
    target_times: np.ndarray
    target_altitude: dict[str, np.ndarray]


@dataclass
class NightPlan:
    date: dt.date
    site: str
    timezone: str
    start: dt.datetime
    end: dt.datetime
    sun_lowest: tuple[dt.datetime, float]
    events: dict[str, SunEvent]
    dark: Interval | None
    dark_reason: str | None
    sky_flat_windows: tuple[SkyFlatWindow, SkyFlatWindow]
    visibility: list[Visibility]
    blocks: list[Block]
    shortfalls: list[Shortfall]
    gaps: list[Gap]
    notes: list[str]
    tracks: Tracks | None = field(default=None, repr=False)

    # Named accessors for the events, so callers need not know the dictionary keys.
    @property
    def sunset(self) -> dt.datetime | None:
        return self.events["sunset"].time

    @property
    def sunrise(self) -> dt.datetime | None:
        return self.events["sunrise"].time

    @property
    def civil_dusk(self) -> dt.datetime | None:
        return self.events["civil_dusk"].time

    @property
    def civil_dawn(self) -> dt.datetime | None:
        return self.events["civil_dawn"].time

    @property
    def nautical_dusk(self) -> dt.datetime | None:
        return self.events["nautical_dusk"].time

    @property
    def nautical_dawn(self) -> dt.datetime | None:
        return self.events["nautical_dawn"].time

    @property
    def astronomical_dusk(self) -> dt.datetime | None:
        return self.events["astronomical_dusk"].time

    @property
    def astronomical_dawn(self) -> dt.datetime | None:
        return self.events["astronomical_dawn"].time

    @property
    def dusk_flat_window(self) -> SkyFlatWindow:
        return self.sky_flat_windows[0]

    @property
    def dawn_flat_window(self) -> SkyFlatWindow:
        return self.sky_flat_windows[1]

    @property
    def light_configs(self) -> list[LightConfig]:
        """Distinct configurations of the lights scheduled tonight, in schedule order."""
        return list(dict.fromkeys(block.config for block in self.blocks))

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(ZoneInfo(self.timezone))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--json`: times as ISO 8601 in UTC, with the local time beside each."""

        def when(moment: dt.datetime | None) -> dict[str, str] | None:
            if moment is None:
                return None
            return {"utc": moment.isoformat(), "local": self.local(moment).isoformat()}

        return {
            "date": self.date.isoformat(),
            "site": self.site,
            "timezone": self.timezone,
            "start": when(self.start),
            "end": when(self.end),
            "sun_lowest": {"time": when(self.sun_lowest[0]), "altitude": round(self.sun_lowest[1], 3)},
            "events": {
                name: {"altitude": e.altitude, "time": when(e.time), "reason": e.reason}
                for name, e in self.events.items()
            },
            "dark": None
            if self.dark is None
            else {"start": when(self.dark.start), "end": when(self.dark.end)},
            "dark_reason": self.dark_reason,
            "sky_flat_windows": [
                {"period": w.period, "start": when(w.start), "end": when(w.end), "reason": w.reason}
                for w in self.sky_flat_windows
            ],
            "visibility": [
                {
                    "target": v.target,
                    "intervals": [{"start": when(i.start), "end": when(i.end)} for i in v.intervals],
                    "reason": v.reason,
                }
                for v in self.visibility
            ],
            "blocks": [
                {
                    "target": b.target,
                    "filter": b.filter,
                    "exposure": b.exposure,
                    "count": b.count,
                    "start": when(b.start),
                    "end": when(b.end),
                    "setup": b.setup,
                }
                for b in self.blocks
            ],
            "shortfalls": [
                {
                    "target": s.target,
                    "filter": s.filter,
                    "exposure": s.exposure,
                    "missing": s.missing,
                    "requested": s.requested,
                }
                for s in self.shortfalls
            ],
            "gaps": [
                {"start": when(g.start), "end": when(g.end), "label": g.label, "items": list(g.items)}
                for g in self.gaps
            ],
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------
# Sun


class _SunCurve:
    """The Sun's altitude across the night on a grid, with exact threshold crossings on demand."""

    def __init__(self, observer: Any, start: float, end: float) -> None:
        self.observer = observer
        self.times = np.arange(start, end + SUN_STEP_S / 2, SUN_STEP_S)
        self.altitude = self.at(self.times)
        self.lowest = int(np.argmin(self.altitude))
        self.lowest_time = self._vertex()

    def _vertex(self) -> float:
        """Time of the Sun's lowest point: a parabola through the grid minimum and its neighbours."""
        i = self.lowest
        if i == 0 or i == len(self.times) - 1:
            return float(self.times[i])
        a, b, c = self.altitude[i - 1 : i + 2]
        curvature = a - 2 * b + c
        shift = 0.5 * (a - c) / curvature if curvature > 0 else 0.0
        return float(self.times[i] + np.clip(shift, -1.0, 1.0) * SUN_STEP_S)

    def at(self, unix: np.ndarray) -> np.ndarray:
        from astropy.time import Time

        return np.asarray(self.observer.sun_altaz(Time(unix, format="unix", scale="utc")).alt.deg)

    def bracket(self, level: float, half: Literal["dusk", "dawn"]) -> int | Literal["above", "below"]:
        """Grid index i with the crossing between i and i+1, or where the Sun stays instead."""
        alt = self.altitude
        if half == "dusk":
            seg = alt[: self.lowest + 1]
            hits = np.nonzero((seg[:-1] > level) & (seg[1:] <= level))[0]
            if hits.size:
                return int(hits[-1])
            return "above" if seg[-1] > level else "below"
        seg = alt[self.lowest :]
        hits = np.nonzero((seg[:-1] <= level) & (seg[1:] > level))[0]
        if hits.size:
            return int(hits[0]) + self.lowest
        return "above" if seg[0] > level else "below"

    def refine(self, requests: list[tuple[int, float, bool]]) -> list[float]:
        """Exact times (unix) of (grid index, level, descending) crossings, all found together.

        Each bracket is cut into pieces twice (ten minutes -> 15 s -> 0.5 s) with one vectorised
        Sun computation per pass, then interpolated linearly: robust near a tangential crossing
        and far cheaper than one astropy call per bisection step.
        """
        if not requests:
            return []
        lo = np.array([self.times[i] for i, _, _ in requests], dtype=float)
        hi = lo + SUN_STEP_S
        level = np.array([lv for _, lv, _ in requests])[:, None]
        descending = np.array([d for _, _, d in requests])[:, None]
        for pieces in _REFINE_PIECES:
            fractions = np.linspace(0.0, 1.0, pieces + 1)[None, :]
            times = lo[:, None] + (hi - lo)[:, None] * fractions
            above = self.at(times.ravel()).reshape(times.shape) - level
            crossed = np.where(
                descending,
                (above[:, :-1] > 0) & (above[:, 1:] <= 0),
                (above[:, :-1] <= 0) & (above[:, 1:] > 0),
            )
            # The piece holding the crossing (the bracket guarantees one; argmax picks the first).
            k = np.where(crossed.any(axis=1), np.argmax(crossed, axis=1), 0)
            rows = np.arange(len(requests))
            f0, f1 = above[rows, k], above[rows, k + 1]
            lo, hi = times[rows, k], times[rows, k + 1]
        share = np.where(f0 != f1, f0 / np.where(f0 != f1, f0 - f1, 1.0), 0.5)
        return list(lo + (hi - lo) * np.clip(share, 0.0, 1.0))


def _utc(unix: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(round(float(unix), 3), tz=UTC)


def _solar_midnight_guess(date: dt.date, longitude: float, zone: ZoneInfo) -> float:
    """Unix time of the solar midnight nearest local midnight after DATE (mean Sun; +-16 min)."""
    local_midnight = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=zone).timestamp()
    utc_midnight = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=UTC).timestamp()
    guess = utc_midnight - longitude / 15.0 * 3600.0
    days = round((local_midnight - guess) / 86400.0)
    return guess + days * 86400.0


def _fmt_alt(value: float) -> str:
    return f"{value:+.1f}°".replace("-", "−")


# ---------------------------------------------------------------------------------------------
# Planning


def plan_night(seq: Sequence, date: dt.date, needs: NeedsFn | None = None) -> NightPlan:
    """Plan the night that begins on the evening of `date` at the sequence's site."""
    offline.configure()
    import astropy.units as u
    from astropy.coordinates.erfa_astrom import ErfaAstromInterpolator, erfa_astrom
    from astropy.utils import iers

    from agent.sequencer.planner_iers import earth_orientation_table

    # Interpolating the slowly varying astrometry parameters costs well under a milliarcsecond.
    with (
        iers.earth_orientation_table.set(earth_orientation_table()),
        erfa_astrom.set(ErfaAstromInterpolator(300 * u.s)),
    ):
        return _plan_night(seq, date, needs)


def _plan_night(seq: Sequence, date: dt.date, needs: NeedsFn | None) -> NightPlan:
    import astropy.units as u
    from astroplan import Observer
    from astropy.coordinates import EarthLocation

    site = seq.site
    zone = site.zone
    location = EarthLocation.from_geodetic(
        site.longitude * u.deg, site.latitude * u.deg, site.elevation * u.m
    )
    observer = Observer(location=location, timezone=site.timezone, name=site.name)

    centre = _solar_midnight_guess(date, site.longitude, zone)
    sun = _SunCurve(observer, centre - 43200.0, centre + 43200.0)
    lowest_alt = float(sun.altitude[sun.lowest])
    lowest_time = _utc(sun.lowest_time)
    highest_alt = float(max(sun.altitude[0], sun.altitude[-1]))

    def clock(moment: dt.datetime) -> str:
        return moment.astimezone(zone).strftime("%H:%M")

    # Every threshold crossing we need, refined in one batch.
    band = seq.calibration.flats.sun_band
    levels: dict[str, float] = {"sunset": SUNSET_ALTITUDE, **TWILIGHTS}
    levels["band_upper"] = band.upper
    levels["band_lower"] = band.lower
    levels["dark"] = seq.schedule.max_sun_altitude
    brackets: dict[tuple[str, str], int | str] = {}
    requests: list[tuple[int, float, bool]] = []
    keys: list[tuple[str, str]] = []
    for name, level in levels.items():
        for half in ("dusk", "dawn"):
            found_at = sun.bracket(level, half)
            brackets[(name, half)] = found_at
            if isinstance(found_at, int):
                requests.append((found_at, level, half == "dusk"))
                keys.append((name, half))
    crossing = dict(zip(keys, sun.refine(requests), strict=True))

    def stays(level: float, where: str) -> str:
        if where == "above":
            return f"the Sun stays above {_fmt_alt(level)} all night (lowest {_fmt_alt(lowest_alt)} at {clock(lowest_time)})"
        return f"the Sun stays below {_fmt_alt(level)} around the clock (highest {_fmt_alt(highest_alt)})"

    events: dict[str, SunEvent] = {}
    for name, (dusk_name, dawn_name) in {
        "sunset": ("sunset", "sunrise"),
        "civil": ("civil_dusk", "civil_dawn"),
        "nautical": ("nautical_dusk", "nautical_dawn"),
        "astronomical": ("astronomical_dusk", "astronomical_dawn"),
    }.items():
        level = levels[name]
        for half, event_name in (("dusk", dusk_name), ("dawn", dawn_name)):
            found = brackets[(name, half)]
            if isinstance(found, int):
                events[event_name] = SunEvent(event_name, level, _utc(crossing[(name, half)]))
            else:
                events[event_name] = SunEvent(event_name, level, None, stays(level, str(found)))

    start_unix, end_unix = float(sun.times[0]), float(sun.times[-1])

    # Darkness for lights.
    notes: list[str] = []
    dark_level = levels["dark"]
    dark: Interval | None = None
    dark_reason: str | None = None
    dark_dusk, dark_dawn = brackets[("dark", "dusk")], brackets[("dark", "dawn")]
    if dark_dusk == "above":  # the lowest point is shared by both halves: no darkness at all
        dark_reason = (
            f"no lights tonight: {stays(dark_level, 'above')}; lights need it below {_fmt_alt(dark_level)} "
            "(schedule.max_sun_altitude)"
        )
    else:
        dark = Interval(
            _utc(crossing[("dark", "dusk")] if isinstance(dark_dusk, int) else start_unix),
            _utc(crossing[("dark", "dawn")] if isinstance(dark_dawn, int) else end_unix),
        )

    # Plain sentences about unusual nights.
    if events["sunset"].time is None:
        if brackets[("sunset", "dusk")] == "above":
            notes.append(
                f"Midnight Sun: the Sun does not set tonight (lowest {_fmt_alt(lowest_alt)} at "
                f"{clock(lowest_time)}); no lights, no sky flats at night, no gaps."
            )
        else:
            notes.append(
                f"Polar night: the Sun does not rise (highest {_fmt_alt(highest_alt)}); "
                "the whole day counts as night."
            )
    if (
        events["astronomical_dusk"].time is None
        and brackets[("astronomical", "dusk")] == "above"
        and events["sunset"].time is not None
    ):
        notes.append(
            f"No astronomical night: the Sun gets no lower than {_fmt_alt(lowest_alt)} "
            f"(at {clock(lowest_time)})."
        )
    if dark is None and events["sunset"].time is not None:
        notes.append(
            f"No lights scheduled: they need the Sun below {_fmt_alt(dark_level)} "
            "(set schedule.max_sun_altitude to -12 to image in nautical darkness)."
        )

    windows = (
        _flat_window("dusk", sun, band.upper, band.lower, brackets, crossing, clock),
        _flat_window("dawn", sun, band.upper, band.lower, brackets, crossing, clock),
    )

    # Targets.
    visibility: list[Visibility] = []
    blocks: list[Block] = []
    shortfalls: list[Shortfall] = []
    tracks_times = np.empty(0)
    tracks_alt: dict[str, np.ndarray] = {}
    if seq.targets:
        if dark is None:
            visibility = [Visibility(t.name, (), dark_reason) for t in seq.targets]
            for target in seq.targets:
                for entry in target.exposures:
                    shortfalls.append(
                        Shortfall(target.name, entry.filter, entry.exposure, entry.count, entry.count)
                    )
        else:
            d0, d1 = dark.start.timestamp(), dark.end.timestamp()
            first = np.ceil(d0 / TARGET_STEP_S) * TARGET_STEP_S
            grid = np.arange(first, d1 + 1e-6, TARGET_STEP_S)
            if grid.size < 2:
                grid = np.array([d0, d1])
            masks, altitudes = _target_masks(seq, observer, location, grid, zone, sun)
            tracks_times = grid
            tracks_alt = {t.name: altitudes[i] for i, t in enumerate(seq.targets)}
            for i, target in enumerate(seq.targets):
                runs = _runs(masks[i], grid)
                reason = None if runs else _why_invisible(target, seq, altitudes[i], masks[i])
                visibility.append(
                    Visibility(target.name, tuple(Interval(_utc(a), _utc(b)) for a, b in runs), reason)
                )
            blocks, shortfalls = _schedule(seq, masks, grid)

    operating = _operating_period(seq, events, windows, dark, start_unix, end_unix, brackets)
    gaps = _gaps(seq, operating, blocks, needs)

    return NightPlan(
        date=date,
        site=site.name,
        timezone=site.timezone,
        start=_utc(start_unix),
        end=_utc(end_unix),
        sun_lowest=(lowest_time, lowest_alt),
        events=events,
        dark=dark,
        dark_reason=dark_reason,
        sky_flat_windows=windows,
        visibility=visibility,
        blocks=blocks,
        shortfalls=shortfalls,
        gaps=gaps,
        notes=notes,
        tracks=Tracks(sun.times, sun.altitude, tracks_times, tracks_alt),
    )


def _flat_window(
    period: Literal["dusk", "dawn"],
    sun: _SunCurve,
    upper: float,
    lower: float,
    brackets: dict[tuple[str, str], int | str],
    crossing: dict[tuple[str, str], float],
    clock: Callable[[dt.datetime], str],
) -> SkyFlatWindow:
    """The part of the dusk (or dawn) half of the night with the Sun between lower and upper."""
    up, low = brackets[("band_upper", period)], brackets[("band_lower", period)]
    lowest_alt = float(sun.altitude[sun.lowest])
    lowest_time = _utc(sun.lowest_time)
    edge = float(sun.times[0] if period == "dusk" else sun.times[-1])
    if up == "below" and low == "below":
        return SkyFlatWindow(
            period,
            None,
            None,
            f"the Sun stays below {_fmt_alt(lower)} around the clock: too dark for sky flats",
        )
    if up == "above":
        return SkyFlatWindow(
            period,
            None,
            None,
            f"the Sun stays above {_fmt_alt(upper)} all night (lowest {_fmt_alt(lowest_alt)}): "
            "too bright for sky flats",
        )
    reason = None
    t_up = crossing[("band_upper", period)] if isinstance(up, int) else edge
    if isinstance(low, int):
        t_low = crossing[("band_lower", period)]
    else:  # the Sun never gets below `lower`: the window runs to (or from) its lowest point
        t_low = sun.lowest_time
        reason = (
            f"the Sun gets no lower than {_fmt_alt(lowest_alt)} (at {clock(lowest_time)}); "
            f"the window {'ends' if period == 'dusk' else 'starts'} at the Sun's lowest point"
        )
    if up == "below":
        reason = f"the Sun is within the band all day (it stays below {_fmt_alt(upper)})"
    a, b = (t_up, t_low) if period == "dusk" else (t_low, t_up)
    return SkyFlatWindow(period, _utc(a), _utc(b), reason)


def _target_masks(
    seq: Sequence, observer: Any, location: Any, grid: np.ndarray, zone: ZoneInfo, sun: _SunCurve
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (targets x grid) observability and the altitudes behind it."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord, get_body
    from astropy.time import Time

    targets = seq.targets
    coords = SkyCoord(
        ra=[t.ra_deg for t in targets] * u.deg, dec=[t.dec_deg for t in targets] * u.deg, frame="icrs"
    )
    times = Time(grid, format="unix", scale="utc")
    altitudes = np.atleast_2d(np.asarray(observer.altaz(times, coords, grid_times_targets=True).alt.deg))
    floor = np.array([max(t.min_altitude, seq.site.horizon) for t in targets])[:, None]
    masks = altitudes >= floor

    # The Sun must be dark enough at every sample (grid ends are exact crossings already).
    sun_alt = np.interp(grid, sun.times, sun.altitude)
    masks &= (sun_alt <= seq.schedule.max_sun_altitude + 1e-6)[None, :]

    moon_limits = [t.min_moon_separation for t in targets]
    if any(limit is not None for limit in moon_limits):
        coarse = np.arange(grid[0], grid[-1] + MOON_STEP_S, MOON_STEP_S)
        moon = get_body("moon", Time(coarse, format="unix", scale="utc"), location)
        for i, limit in enumerate(moon_limits):
            if limit is None:
                continue
            seen_from_here = coords[i].transform_to(moon.frame)  # same frame: topocentric Moon parallax kept
            separation = np.asarray(moon.separation(seen_from_here).deg)
            masks[i] &= np.interp(grid, coarse, separation) >= limit

    minutes = np.array(
        [(lambda d: d.hour * 60 + d.minute)(dt.datetime.fromtimestamp(float(x), tz=zone)) for x in grid]
    )
    for i, target in enumerate(targets):
        if target.window is None:
            continue
        w0, w1 = target.window.minutes(target.window.start), target.window.minutes(target.window.end)
        inside = (minutes >= w0) & (minutes < w1) if w0 < w1 else (minutes >= w0) | (minutes < w1)
        masks[i] &= inside
    return masks, altitudes


def _runs(mask: np.ndarray, grid: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous true stretches of a sampled mask as (first, last) sample times."""
    if not mask.any():
        return []
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(float(grid[a]), float(grid[b - 1])) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _why_invisible(target: Target, seq: Sequence, altitude: np.ndarray, mask: np.ndarray) -> str:
    floor = max(target.min_altitude, seq.site.horizon)
    peak = float(altitude.max()) if altitude.size else float("nan")
    if peak < floor:
        return f"it gets no higher than {_fmt_alt(peak)} in darkness; it needs {_fmt_alt(floor)}"
    reasons = []
    if target.min_moon_separation is not None:
        reasons.append(f"Moon closer than {target.min_moon_separation:g}°")
    if target.window is not None:
        reasons.append(f"time window {target.window.start}-{target.window.end}")
    return "constraints never met together in darkness" + (f" ({', '.join(reasons)})" if reasons else "")


def _light_config(seq: Sequence, filter_name: str, exposure: float) -> LightConfig:
    cam = seq.camera
    return LightConfig(
        camera=seq.indi.devices.camera,
        sensor=cam.sensor,
        gain=cam.gain,
        offset=cam.offset,
        binning=cam.binning,
        readout_mode=cam.readout_mode,
        bit_depth=cam.bit_depth,
        set_point=cam.set_point,
        filter=filter_name,
        exposure=exposure,
    )


def _free_parts(start: float, end: float, busy: list[tuple[float, float]]) -> list[tuple[float, float]]:
    parts = []
    cursor = start
    for b0, b1 in busy:
        if b1 <= cursor or b0 >= end:
            continue
        if b0 > cursor:
            parts.append((cursor, b0))
        cursor = max(cursor, b1)
    if cursor < end:
        parts.append((cursor, end))
    return parts


def _schedule(seq: Sequence, masks: np.ndarray, grid: np.ndarray) -> tuple[list[Block], list[Shortfall]]:
    """Greedy by priority: each exposure entry takes the earliest free time its target is visible."""
    overhead = seq.schedule.frame_overhead
    change = seq.schedule.target_change
    busy: list[tuple[float, float, str]] = []
    placed: list[tuple[float, float, str, str, float, int, float]] = []
    shortfalls: list[Shortfall] = []
    order = sorted(range(len(seq.targets)), key=lambda i: (seq.targets[i].priority, i))
    for index in order:
        target = seq.targets[index]
        runs = _runs(masks[index], grid)
        for entry in target.exposures:
            remaining = entry.count
            frame = entry.exposure + overhead
            for run_start, run_end in runs:
                if remaining == 0:
                    break
                spans = sorted((b0, b1) for b0, b1, _ in busy)
                for free_start, free_end in _free_parts(run_start, run_end, spans):
                    if remaining == 0:
                        break
                    follows_same = any(
                        abs(b1 - free_start) < 1e-6 and name == target.name for _, b1, name in busy
                    )
                    setup = 0.0 if follows_same else change
                    fits = int((free_end - free_start - setup) // frame)
                    count = min(remaining, fits)
                    if count < 1:
                        continue
                    block_end = free_start + setup + count * frame
                    busy.append((free_start, block_end, target.name))
                    placed.append(
                        (free_start, block_end, target.name, entry.filter, entry.exposure, count, setup)
                    )
                    remaining -= count
            if remaining:
                shortfalls.append(
                    Shortfall(target.name, entry.filter, entry.exposure, remaining, entry.count)
                )
    placed.sort()
    blocks = [
        Block(name, filt, exp, count, _utc(a), _utc(b), setup, _light_config(seq, filt, exp))
        for a, b, name, filt, exp, count, setup in placed
    ]
    return blocks, shortfalls


def _operating_period(
    seq: Sequence,
    events: dict[str, SunEvent],
    windows: tuple[SkyFlatWindow, SkyFlatWindow],
    dark: Interval | None,
    start_unix: float,
    end_unix: float,
    brackets: dict[tuple[str, str], int | str],
) -> Interval | None:
    """From sunset (or the end of dusk sky flats) to sunrise (or the start of dawn sky flats)."""
    if brackets[("sunset", "dusk")] == "above" and brackets[("sunset", "dawn")] == "above":
        return None
    sunset, sunrise = events["sunset"].time, events["sunrise"].time
    begin = sunset.timestamp() if sunset is not None else start_unix
    finish = sunrise.timestamp() if sunrise is not None else end_unix
    flats = seq.calibration.flats
    dusk, dawn = windows
    if flats.sky_at_dusk and dusk.end is not None:
        begin = max(begin, dusk.end.timestamp())
    if flats.sky_at_dawn and dawn.start is not None:
        finish = min(finish, dawn.start.timestamp())
    if finish <= begin:
        return None
    return Interval(_utc(begin), _utc(finish))


def default_gap_items(seq: Sequence, lights: Iterable[LightConfig]) -> list[str]:
    """What a gap is good for, from the sequence alone: darks for tonight's lights, bias, dark flats."""
    policy = seq.calibration
    if not policy.darks.in_gaps:
        return []
    lights = list(lights)
    items = list(dict.fromkeys(light.dark_label() for light in lights))
    settings = _light_config(seq, "", 0.0).settings()
    if policy.bias.count > 0:
        items.append(f"bias: {settings}")
    if policy.flats.dark_flats:
        items.append(f"dark flats: {settings} at tonight's flat exposures")
    if policy.flats.source == "panel":
        used = list(dict.fromkeys(light.filter for light in lights)) or list(seq.filters)
        items.append(f"flats (panel): {', '.join(used)}")
    return items


def _gaps(seq: Sequence, operating: Interval | None, blocks: list[Block], needs: NeedsFn | None) -> list[Gap]:
    if operating is None:
        return []
    minimum = seq.calibration.darks.min_gap_minutes * 60.0
    busy = sorted((b.start.timestamp(), b.end.timestamp()) for b in blocks)
    lights = list(dict.fromkeys(b.config for b in blocks))
    gaps = []
    for a, b in _free_parts(operating.start.timestamp(), operating.end.timestamp(), busy):
        if b - a < minimum:
            continue
        start, end = _utc(a), _utc(b)
        items = list(needs(lights, start, end)) if needs is not None else default_gap_items(seq, lights)
        gaps.append(Gap(start, end, "; ".join(items) if items else "idle", tuple(items)))
    return gaps


def default_night(zone: ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    """The night in progress or coming: before local noon it is last evening's night."""
    moment = (now or dt.datetime.now(UTC)).astimezone(zone)
    return moment.date() - dt.timedelta(days=1) if moment.hour < 12 else moment.date()
