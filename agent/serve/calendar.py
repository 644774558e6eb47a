"""Which night is next and when its work starts: cooling begins `cooldown_lead` before dusk, or
in the morning when the day is used for the night's darks (`calibration.darks.by_day`)."""

from __future__ import annotations

import datetime as dt

from agent.config import Sequence
from agent.planner import default_night, plan_night


def night_start(seq: Sequence, night: dt.date) -> dt.datetime:
    """When the service wakes for `night`: the cooler's lead before the first thing the night does
    (the dusk flats when they are taken, else sunset). With darks by day, the start of the night's
    date: the runner begins as soon as the previous night is done and spends the day on darks."""
    if seq.calibration.darks.by_day:
        return dt.datetime.combine(night, dt.time(0, 0), tzinfo=seq.site.zone).astimezone(dt.UTC)
    first = plan_night(seq, night).begins(seq.calibration.flats.sky_at_dusk)
    return first - dt.timedelta(seconds=seq.schedule.cooldown_lead)


def sim_start(seq: Sequence, night: dt.date) -> dt.datetime:
    """Where a simulated service's clock begins: just before it wakes for `night`; with darks by day,
    just after the previous night's sunrise (that night is then too late to start, and the day is
    `night`'s), not at the midnight `night_start` names, which is still the previous night."""
    if seq.calibration.darks.by_day:
        previous = plan_night(seq, night - dt.timedelta(days=1))
        return (previous.sunrise or previous.end) + dt.timedelta(minutes=10)
    return night_start(seq, night) - dt.timedelta(minutes=5)


def night_over(seq: Sequence, night: dt.date, now: dt.datetime) -> bool:
    """True once the morning of `night` is well past (the Sun is up and its work window closed)."""
    plan = plan_night(seq, night)
    end = plan.sunrise or plan.end
    return now > end + dt.timedelta(hours=3)


def current_night(seq: Sequence, now: dt.datetime, done: set[str]) -> dt.date:
    """The night to work on: the one in progress, unless it is finished, then the next."""
    night = default_night(seq.site.zone, now)
    if night.isoformat() in done:
        night += dt.timedelta(days=1)
    return night


def too_late_to_start(seq: Sequence, night: dt.date, now: dt.datetime) -> bool:
    """A night nothing was done in is not started after sunrise: its morning work is for lights
    it never took. (A night that was under way is still finished after sunrise.)"""
    plan = plan_night(seq, night)
    return now > (plan.sunrise or plan.end)
