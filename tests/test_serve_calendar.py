"""When the service wakes for a night, and which night it works on."""

from __future__ import annotations

import datetime as dt

from agent.config import Sequence
from agent.config.loading import parse_sequence
from agent.planner import plan_night
from agent.serve.calendar import current_night, night_over, night_start, sim_start, too_late_to_start
from tests.config_fixtures import MINIMAL_SEQUENCE

NIGHT = dt.date(2026, 12, 1)


def _seq(extra: str = "") -> Sequence:
    return parse_sequence(MINIMAL_SEQUENCE + extra, "night.yaml")


def test_cooldown_lead_moves_the_wake_up_before_the_dusk_flats() -> None:
    default, early = _seq(), _seq("schedule: {cooldown_lead: 3600}\n")
    dusk = plan_night(default, NIGHT).sky_flat_windows[0].start
    assert dusk is not None
    assert dusk - night_start(default, NIGHT) == dt.timedelta(minutes=30)
    assert dusk - night_start(early, NIGHT) == dt.timedelta(hours=1)


def test_a_finished_night_gives_way_to_the_next_and_a_morning_install_waits_for_tonight() -> None:
    seq = _seq()
    morning = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
    assert current_night(seq, morning, set()) == NIGHT
    assert current_night(seq, morning, {NIGHT.isoformat()}) == NIGHT + dt.timedelta(days=1)
    assert too_late_to_start(seq, NIGHT, morning)
    assert not too_late_to_start(seq, NIGHT, dt.datetime(2026, 12, 1, 22, 0, tzinfo=dt.UTC))


def test_darks_by_day_start_the_night_in_its_morning_and_end_the_day_at_the_dusk_flats() -> None:
    by_day = parse_sequence(MINIMAL_SEQUENCE.replace("  devices: {camera: CCD Simulator}",
                                                     "  devices: {camera: CCD Simulator, dust_cap: Cap}")
                            + "  darks: {by_day: true}\n", "night.yaml")
    start = night_start(by_day, NIGHT)
    assert start.astimezone(by_day.site.zone) == dt.datetime(2026, 12, 1, 0, 0, tzinfo=by_day.site.zone)
    # the morning after the previous night is done, the service starts this night's run at once
    morning = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    assert current_night(by_day, morning, {"2026-11-30"}) == NIGHT and start <= morning
    assert night_start(_seq(), NIGHT) > morning  # without darks by day the day is idle
    plan = plan_night(by_day, NIGHT)
    assert plan.begins(dusk_flats=True) == plan.sky_flat_windows[0].start  # the day's calibration ends there
    assert plan.begins(dusk_flats=False) == plan.sunset


def test_a_simulated_service_with_darks_by_day_begins_in_the_nights_morning() -> None:
    by_day = parse_sequence(MINIMAL_SEQUENCE.replace("  devices: {camera: CCD Simulator}",
                                                     "  devices: {camera: CCD Simulator, dust_cap: Cap}")
                            + "  darks: {by_day: true}\n", "night.yaml")
    start = sim_start(by_day, NIGHT)
    previous = NIGHT - dt.timedelta(days=1)
    assert start.astimezone(by_day.site.zone).date() == NIGHT and start > plan_night(by_day, previous).sunrise
    # the service there works on NIGHT's day: the previous night is not started after its sunrise
    assert current_night(by_day, start, set()) == previous
    assert too_late_to_start(by_day, previous, start) and not night_over(by_day, previous, start)
    assert night_start(by_day, NIGHT) <= start
    plain = _seq()
    assert sim_start(plain, NIGHT) == night_start(plain, NIGHT) - dt.timedelta(minutes=5)
