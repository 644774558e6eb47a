"""When the service wakes for a night, and which night it works on."""

from __future__ import annotations

import datetime as dt

from agent.config import Sequence
from agent.config.loading import parse_sequence
from agent.planner import plan_night
from agent.serve.calendar import current_night, night_start, too_late_to_start
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
