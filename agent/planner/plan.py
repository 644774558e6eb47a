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
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

from agent import offline
from agent.config import Sequence
from agent.planner.night_plan import (
    Block,
    EntryProgress,
    Interval,
    NeedsFn,
    NightPlan,
    Shortfall,
    SkyFlatWindow,
    SunEvent,
    Tracks,
    Visibility,
)
from agent.planner.schedule import (
    TARGET_STEP_S,
    find_gaps,
    lights_wanted,
    schedule_lights,
    target_masks,
    visible_runs,
    why_invisible,
)
from agent.sky.sun import (
    SUNSET_ALTITUDE,
    TWILIGHTS,
    UTC,
    SunCurve,
    format_altitude,
    solar_midnight_guess,
    unix_to_utc,
)


def plan_night(
    seq: Sequence,
    date: dt.date,
    needs: NeedsFn | None = None,
    progress: Iterable[EntryProgress] | None = None,
) -> NightPlan:
    """Plan the night that begins on the evening of `date` at the sequence's site.

    `progress` is the campaign so far (`agent.library.queries.campaign.campaign_progress`): an
    entry gets min(what its total still misses, its per-night cap) and a finished one is left
    out with a note. Without it the night is planned as the campaign's first."""
    offline.configure()
    import astropy.units as u
    from astropy.coordinates.erfa_astrom import ErfaAstromInterpolator, erfa_astrom
    from astropy.utils import iers

    from agent.sky.iers import earth_orientation_table

    # Interpolating the slowly varying astrometry parameters costs well under a milliarcsecond.
    with (
        iers.earth_orientation_table.set(earth_orientation_table()),
        erfa_astrom.set(ErfaAstromInterpolator(300 * u.s)),
    ):
        return _plan_night(seq, date, needs, progress)


def _plan_night(
    seq: Sequence, date: dt.date, needs: NeedsFn | None, progress: Iterable[EntryProgress] | None
) -> NightPlan:
    import astropy.units as u
    from astroplan import Observer
    from astropy.coordinates import EarthLocation

    site = seq.site
    zone = site.zone
    location = EarthLocation.from_geodetic(
        site.longitude * u.deg, site.latitude * u.deg, site.elevation * u.m
    )
    observer = Observer(location=location, timezone=site.timezone, name=site.name)

    centre = solar_midnight_guess(date, site.longitude, zone)
    sun = SunCurve(observer, centre - 43200.0, centre + 43200.0)
    lowest_alt = float(sun.altitude[sun.lowest])
    lowest_time = unix_to_utc(sun.lowest_time)
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
            return f"the Sun stays above {format_altitude(level)} all night (lowest {format_altitude(lowest_alt)} at {clock(lowest_time)})"
        return f"the Sun stays below {format_altitude(level)} around the clock (highest {format_altitude(highest_alt)})"

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
                events[event_name] = SunEvent(event_name, level, unix_to_utc(crossing[(name, half)]))
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
            f"no lights tonight: {stays(dark_level, 'above')}; lights need it below {format_altitude(dark_level)} "
            "(schedule.max_sun_altitude)"
        )
    else:
        dark = Interval(
            unix_to_utc(crossing[("dark", "dusk")] if isinstance(dark_dusk, int) else start_unix),
            unix_to_utc(crossing[("dark", "dawn")] if isinstance(dark_dawn, int) else end_unix),
        )

    # Plain sentences about unusual nights.
    if events["sunset"].time is None:
        if brackets[("sunset", "dusk")] == "above":
            notes.append(
                f"Midnight Sun: the Sun does not set tonight (lowest {format_altitude(lowest_alt)} at "
                f"{clock(lowest_time)}); no lights, no sky flats at night, no gaps."
            )
        else:
            notes.append(
                f"Polar night: the Sun does not rise (highest {format_altitude(highest_alt)}); "
                "the whole day counts as night."
            )
    if (
        events["astronomical_dusk"].time is None
        and brackets[("astronomical", "dusk")] == "above"
        and events["sunset"].time is not None
    ):
        notes.append(
            f"No astronomical night: the Sun gets no lower than {format_altitude(lowest_alt)} "
            f"(at {clock(lowest_time)})."
        )
    if dark is None and events["sunset"].time is not None:
        notes.append(
            f"No lights scheduled: they need the Sun below {format_altitude(dark_level)} "
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
    wanted, campaign_notes = lights_wanted(seq, progress)
    notes.extend(campaign_notes)
    if seq.targets:
        if dark is None:
            visibility = [Visibility(t.name, (), dark_reason) for t in seq.targets]
            for i, target in enumerate(seq.targets):
                for j, entry in enumerate(target.exposures):
                    if wanted[(i, j)]:
                        shortfalls.append(
                            Shortfall(target.name, entry.filter, entry.exposure, wanted[(i, j)], wanted[(i, j)])
                        )
        else:
            d0, d1 = dark.start.timestamp(), dark.end.timestamp()
            first = np.ceil(d0 / TARGET_STEP_S) * TARGET_STEP_S
            grid = np.arange(first, d1 + 1e-6, TARGET_STEP_S)
            if grid.size < 2:
                grid = np.array([d0, d1])
            masks, altitudes = target_masks(seq, observer, location, grid, zone, sun)
            tracks_times = grid
            tracks_alt = {t.name: altitudes[i] for i, t in enumerate(seq.targets)}
            for i, target in enumerate(seq.targets):
                runs = visible_runs(masks[i], grid)
                reason = None if runs else why_invisible(target, seq, altitudes[i], masks[i])
                visibility.append(
                    Visibility(target.name, tuple(Interval(unix_to_utc(a), unix_to_utc(b)) for a, b in runs), reason)
                )
            blocks, shortfalls = schedule_lights(seq, masks, grid, wanted)

    operating = _operating_period(seq, events, windows, dark, start_unix, end_unix, brackets)
    gaps = find_gaps(seq, operating, blocks, needs)

    return NightPlan(
        date=date,
        site=site.name,
        timezone=site.timezone,
        start=unix_to_utc(start_unix),
        end=unix_to_utc(end_unix),
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
    sun: SunCurve,
    upper: float,
    lower: float,
    brackets: dict[tuple[str, str], int | str],
    crossing: dict[tuple[str, str], float],
    clock: Callable[[dt.datetime], str],
) -> SkyFlatWindow:
    """The part of the dusk (or dawn) half of the night with the Sun between lower and upper."""
    up, low = brackets[("band_upper", period)], brackets[("band_lower", period)]
    lowest_alt = float(sun.altitude[sun.lowest])
    lowest_time = unix_to_utc(sun.lowest_time)
    edge = float(sun.times[0] if period == "dusk" else sun.times[-1])
    if up == "below" and low == "below":
        return SkyFlatWindow(
            period,
            None,
            None,
            f"the Sun stays below {format_altitude(lower)} around the clock: too dark for sky flats",
        )
    if up == "above":
        return SkyFlatWindow(
            period,
            None,
            None,
            f"the Sun stays above {format_altitude(upper)} all night (lowest {format_altitude(lowest_alt)}): "
            "too bright for sky flats",
        )
    reason = None
    t_up = crossing[("band_upper", period)] if isinstance(up, int) else edge
    if isinstance(low, int):
        t_low = crossing[("band_lower", period)]
    else:  # the Sun never gets below `lower`: the window runs to (or from) its lowest point
        t_low = sun.lowest_time
        reason = (
            f"the Sun gets no lower than {format_altitude(lowest_alt)} (at {clock(lowest_time)}); "
            f"the window {'ends' if period == 'dusk' else 'starts'} at the Sun's lowest point"
        )
    if up == "below":
        reason = f"the Sun is within the band all day (it stays below {format_altitude(upper)})"
    a, b = (t_up, t_low) if period == "dusk" else (t_low, t_up)
    return SkyFlatWindow(period, unix_to_utc(a), unix_to_utc(b), reason)


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
    return Interval(unix_to_utc(begin), unix_to_utc(finish))


def default_night(zone: ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    """The night in progress or coming: before local noon it is last evening's night."""
    moment = (now or dt.datetime.now(UTC)).astimezone(zone)
    return moment.date() - dt.timedelta(days=1) if moment.hour < 12 else moment.date()
