"""Where the lights go: target visibility on a minute grid, the greedy schedule by priority, the gaps."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from agent.config import Sequence, Target
from agent.planner.night_plan import Block, EntryProgress, Gap, Interval, LightConfig, NeedsFn, Shortfall
from agent.sky.sun import SunCurve, format_altitude, unix_to_utc

TARGET_STEP_S = 60.0
MOON_STEP_S = 1800.0


def target_masks(
    seq: Sequence, observer: Any, location: Any, grid: np.ndarray, zone: ZoneInfo, sun: SunCurve
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


def visible_runs(mask: np.ndarray, grid: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous true stretches of a sampled mask as (first, last) sample times."""
    if not mask.any():
        return []
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(float(grid[a]), float(grid[b - 1])) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def why_invisible(target: Target, seq: Sequence, altitude: np.ndarray, mask: np.ndarray) -> str:
    floor = max(target.min_altitude, seq.site.horizon)
    peak = float(altitude.max()) if altitude.size else float("nan")
    if peak < floor:
        return f"it gets no higher than {format_altitude(peak)} in darkness; it needs {format_altitude(floor)}"
    reasons = []
    if target.min_moon_separation is not None:
        reasons.append(f"Moon closer than {target.min_moon_separation:g}°")
    if target.window is not None:
        reasons.append(f"time window {target.window.start}-{target.window.end}")
    return "constraints never met together in darkness" + (f" ({', '.join(reasons)})" if reasons else "")


def light_config(
    seq: Sequence, filter_name: str, exposure: float, readout_mode: str | None = None
) -> LightConfig:
    cam = seq.camera
    return LightConfig(
        camera=seq.indi.devices.camera,
        sensor=cam.sensor,
        gain=cam.gain,
        offset=cam.offset,
        binning=cam.binning,
        readout_mode=readout_mode or cam.readout_mode,
        bit_depth=cam.bit_depth,
        set_point=cam.set_point,
        filter=filter_name,
        exposure=exposure,
    )


def free_parts(start: float, end: float, busy: list[tuple[float, float]]) -> list[tuple[float, float]]:
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


Wanted = dict[tuple[int, int], int]
"""Lights tonight for each exposure entry, by (target index, entry index) in the sequence."""


def lights_wanted(seq: Sequence, progress: Iterable[EntryProgress] | None) -> tuple[Wanted, list[str]]:
    """How many lights each entry is to get tonight, and a sentence for each entry left out or capped.

    `count` is the campaign total and `per_night` one night's cap. Without the library's progress
    (`obsagent plan` on a fresh library) the night is the campaign's first: min(count, per_night).
    """
    known: Mapping[tuple[str, str, float, str | None], EntryProgress] = {
        (p.target, p.filter, p.exposure, p.readout_mode): p for p in progress or ()
    }
    wanted: Wanted = {}
    notes: list[str] = []
    for i, target in enumerate(seq.targets):
        for j, entry in enumerate(target.exposures):
            cap = entry.per_night if entry.per_night is not None else entry.count
            mode = target.readout_mode_for(entry, seq.camera.readout_mode)
            found = known.get((target.name, entry.filter, entry.exposure, mode))
            label = f"{target.name} {entry.filter} {entry.exposure:g}s"
            if found is None:
                wanted[(i, j)] = min(entry.count, cap)
            elif found.done >= found.total:
                wanted[(i, j)] = 0
                notes.append(f"{label}: campaign complete {found.done}/{found.total}")
            else:
                wanted[(i, j)] = found.remaining_tonight
                if found.remaining_tonight == 0:
                    notes.append(f"{label}: tonight's {cap} taken already ({found.done}/{found.total} so far)")
                elif found.remaining_tonight < found.total - found.done:
                    notes.append(
                        f"{label}: {found.remaining_tonight} tonight (per_night {cap}), "
                        f"{found.done}/{found.total} so far"
                    )
    return wanted, notes


def schedule_lights(
    seq: Sequence, masks: np.ndarray, grid: np.ndarray, wanted: Wanted | None = None
) -> tuple[list[Block], list[Shortfall]]:
    """Greedy by priority: each exposure entry takes the earliest free time its target is visible.

    `wanted` says how many lights each entry gets tonight (`lights_wanted`); an entry wanting none
    is left out."""
    if wanted is None:
        wanted, _ = lights_wanted(seq, None)
    overhead = seq.schedule.frame_overhead
    change = seq.schedule.target_change
    busy: list[tuple[float, float, str]] = []
    placed: list[tuple[float, float, str, str, float, int, float, str | None]] = []
    shortfalls: list[Shortfall] = []
    order = sorted(range(len(seq.targets)), key=lambda i: (seq.targets[i].priority, i))
    for index in order:
        target = seq.targets[index]
        runs = visible_runs(masks[index], grid)
        for j, entry in enumerate(target.exposures):
            requested = remaining = wanted.get((index, j), 0)
            frame = entry.exposure + overhead
            for run_start, run_end in runs:
                if remaining == 0:
                    break
                spans = sorted((b0, b1) for b0, b1, _ in busy)
                for free_start, free_end in free_parts(run_start, run_end, spans):
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
                    mode = target.readout_mode_for(entry, seq.camera.readout_mode)
                    placed.append(
                        (free_start, block_end, target.name, entry.filter, entry.exposure, count, setup, mode)
                    )
                    remaining -= count
            if remaining:
                shortfalls.append(
                    Shortfall(target.name, entry.filter, entry.exposure, remaining, requested)
                )
    placed.sort(key=lambda p: p[:7])
    blocks = [
        Block(name, filt, exp, count, unix_to_utc(a), unix_to_utc(b), setup, light_config(seq, filt, exp, mode))
        for a, b, name, filt, exp, count, setup, mode in placed
    ]
    return blocks, shortfalls


def default_gap_items(seq: Sequence, lights: Iterable[LightConfig]) -> list[str]:
    """What a gap is good for, from the sequence alone: darks for tonight's lights, bias, dark flats."""
    policy = seq.calibration
    if not policy.darks.in_gaps:
        return []
    lights = list(lights)
    items = list(dict.fromkeys(light.dark_label() for light in lights))
    settings = light_config(seq, "", 0.0).settings()
    if policy.bias.count > 0:
        items.append(f"bias: {settings}")
    if policy.flats.dark_flats:
        items.append(f"dark flats: {settings} at tonight's flat exposures")
    if policy.flats.source == "panel":
        used = list(dict.fromkeys(light.filter for light in lights)) or list(seq.filters)
        items.append(f"flats (panel): {', '.join(used)}")
    return items


def find_gaps(seq: Sequence, operating: Interval | None, blocks: list[Block], needs: NeedsFn | None) -> list[Gap]:
    if operating is None:
        return []
    minimum = seq.calibration.darks.min_gap_minutes * 60.0
    busy = sorted((b.start.timestamp(), b.end.timestamp()) for b in blocks)
    lights = list(dict.fromkeys(b.config for b in blocks))
    gaps = []
    for a, b in free_parts(operating.start.timestamp(), operating.end.timestamp(), busy):
        if b - a < minimum:
            continue
        start, end = unix_to_utc(a), unix_to_utc(b)
        items = list(needs(lights, start, end)) if needs is not None else default_gap_items(seq, lights)
        gaps.append(Gap(start, end, "; ".join(items) if items else "idle", tuple(items)))
    return gaps
