"""What is due now: the clock, tonight's plan and the library decide the next activity.

The runner asks after every activity, so a resumed night (after a crash) lands in whatever is due
at that moment with the counts the library has — nothing is remembered in memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from agent.night.context import NightContext
from agent.planner import Block, Gap


@dataclass(frozen=True)
class Due:
    activity: str  # a state name
    until: dt.datetime | None  # when this activity's window ends (None: until done)
    reason: str


def night_end(ctx: NightContext) -> dt.datetime:
    """Sunrise, or the plan's end where the Sun never rises."""
    return ctx.plan.sunrise or ctx.plan.end


def remaining_in_block(ctx: NightContext, block: Block) -> int:
    """Lights the block's entry may still take tonight, by the numbers the plan was made with:
    the campaign total less the good lights of all nights, within the entry's per-night cap."""
    from agent.library.queries.campaign import entry_progress

    found = entry_progress(ctx.library, ctx.seq, block.target, block.filter, block.exposure,
                           block.config.readout_mode, ctx.night)  # fmt: skip
    if found is None:  # not an entry of the sequence: the block's own count
        done = ctx.count_frames("light", block.exposure, block.filter, block.target)
        return max(0, block.count - done)
    return found.remaining_tonight


def block_key(block: Block) -> str:
    return f"block@{block.target}/{block.filter}/{block.start.isoformat()}"


def gap_key(gap: Gap) -> str:
    return f"gap@{gap.start.isoformat()}"


def visible_until(ctx: NightContext, target: str, now: dt.datetime) -> dt.datetime | None:
    """End of the visibility interval containing `now`, or None when the target is not observable."""
    for vis in ctx.plan.visibility:
        if vis.target == target:
            for interval in vis.intervals:
                if interval.start <= now < interval.end:
                    return interval.end
    return None


def active_block(ctx: NightContext, now: dt.datetime) -> Block | None:
    """The scheduled block now, else an earlier block that fell short and whose target is still up.

    Frames take longer than planned (downloads, slews, a resumed night), so a block that ran out of
    time is caught up in idle time while its target stays observable; a block scheduled for now wins.
    """
    def fits(block: Block) -> bool:
        room = (block_until(ctx, block, now) - now).total_seconds()
        return room >= block.exposure and block_key(block) not in ctx.progress.finished_activities

    for block in ctx.plan.blocks:
        if block.start <= now < block.end and fits(block) and remaining_in_block(ctx, block) > 0:
            return block
    for block in ctx.plan.blocks:
        if (block.start <= now and visible_until(ctx, block.target, now) is not None and fits(block)
                and remaining_in_block(ctx, block) > 0):
            return block
    return None


def block_until(ctx: NightContext, block: Block, now: dt.datetime) -> dt.datetime:
    """When this block must stop: its scheduled end, or (catching up) the next block's start or setting."""
    if block.start <= now < block.end:
        return block.end
    limit = visible_until(ctx, block.target, now) or now
    later = [b.start for b in ctx.plan.blocks if b.start > now]
    return min([limit, *later])


def active_gap(ctx: NightContext, now: dt.datetime) -> Gap | None:
    for gap in ctx.plan.gaps:
        if gap.start <= now < gap.end:
            return gap
    return None


def finished(ctx: NightContext, activity: str) -> bool:
    return activity in ctx.progress.finished_activities


def mark_finished(ctx: NightContext, activity: str) -> None:
    """Remember (in the night's progress, so a restart knows) that an activity is done for tonight."""
    if activity not in ctx.progress.finished_activities:
        ctx.progress.finished_activities.append(activity)
        ctx.progress_store.save(ctx.progress)


def night_begins(ctx: NightContext) -> dt.datetime:
    """The night's first activity: the end of the day's calibration."""
    return ctx.plan.begins(ctx.seq.calibration.flats.sky_at_dusk)


def cooling_starts(ctx: NightContext) -> dt.datetime:
    """`schedule.cooldown_lead` before the night begins: a resting cooler is cooled again from here."""
    return night_begins(ctx) - dt.timedelta(seconds=ctx.seq.schedule.cooldown_lead)


def due(ctx: NightContext) -> Due:
    now = ctx.now()
    flats = ctx.seq.calibration.flats
    dusk, dawn = ctx.plan.sky_flat_windows
    end = night_end(ctx)
    begins = night_begins(ctx)
    if ctx.seq.calibration.darks.by_day and now < begins and not finished(ctx, "day_calibration"):
        return Due("day_calibration", begins, "the day before the night: cap-closed darks for tonight")
    if ctx.cooler_resting and now >= cooling_starts(ctx):
        return Due("cooldown", None, "cooling for the night after the day's darks")  # whatever the file says now
    if (
        flats.sky_at_dusk
        and dusk.start
        and dusk.end
        and dusk.start <= now < dusk.end
        and not finished(ctx, "dusk_flats")
    ):
        return Due("dusk_flats", dusk.end, "the Sun is in the sky-flat band")
    block = active_block(ctx, now)
    if block is not None:
        return Due("imaging", block_until(ctx, block, now), f"{block.target} {block.filter} is scheduled")
    gap = active_gap(ctx, now)
    if gap is not None and ctx.seq.calibration.darks.in_gaps and not finished(ctx, gap_key(gap)):
        return Due("gap_calibration", gap.end, gap.label)
    if (
        flats.sky_at_dawn
        and dawn.start
        and dawn.end
        and dawn.start <= now < dawn.end
        and not finished(ctx, "dawn_flats")
    ):
        return Due("dawn_flats", dawn.end, "the Sun is in the sky-flat band")
    last_light = max((b.end for b in ctx.plan.blocks), default=None)
    morning = (dawn.end if flats.sky_at_dawn and dawn.end else None) or end
    past_imaging = now >= morning or (
        last_light is not None and now >= last_light and now >= _dawn_start(ctx)
    )
    if flats.source == "panel" and past_imaging and not finished(ctx, "panel_flats"):
        return Due("panel_flats", None, "imaging is over; panel flats")
    if past_imaging and not finished(ctx, "morning_calibration"):
        return Due("morning_calibration", None, "imaging is over; bias, dark flats and missing darks")
    if past_imaging:
        return Due("warmup", None, "the night's work is done")
    return Due("waiting", next_change(ctx, now), "nothing is due yet")


def _dawn_start(ctx: NightContext) -> dt.datetime:
    dawn = ctx.plan.sky_flat_windows[1]
    if ctx.seq.calibration.flats.sky_at_dawn and dawn.start is not None:
        return dawn.start
    return night_end(ctx)


def next_change(ctx: NightContext, now: dt.datetime) -> dt.datetime:
    """The next moment something may become due."""
    dusk, dawn = ctx.plan.sky_flat_windows
    moments = [dusk.start, dusk.end, dawn.start, dawn.end, night_end(ctx)]
    if ctx.cooler_resting:  # the cooler comes back on for the night
        moments.append(cooling_starts(ctx))
    moments += [b.start for b in ctx.plan.blocks] + [b.end for b in ctx.plan.blocks]
    moments += [g.start for g in ctx.plan.gaps] + [g.end for g in ctx.plan.gaps]
    future = [m for m in moments if m is not None and m > now]
    return min(future) if future else now + dt.timedelta(minutes=10)
