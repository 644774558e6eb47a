"""What the dispatcher offers through the day before a night: the day's darks (with `darks.by_day`),
then the cooler's rest, then cooling again `schedule.cooldown_lead` before the night begins."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from agent.config import Sequence
from agent.config.loading import parse_sequence
from agent.night.context import NightContext
from agent.night.dispatch import due, next_change
from agent.night.progress import ProgressStore, RunProgress
from agent.planner import plan_night
from tests.config_fixtures import MINIMAL_SEQUENCE

NIGHT = dt.date(2026, 12, 1)
LEAD = dt.timedelta(minutes=30)


def _seq(by_day: bool) -> Sequence:
    text = MINIMAL_SEQUENCE.replace("{camera: CCD Simulator}", "{camera: CCD Simulator, dust_cap: Cap}")
    return parse_sequence(text + f"  darks: {{by_day: {str(by_day).lower()}}}\n", "night.yaml")


class HandClock:
    def __init__(self, t: dt.datetime) -> None:
        self.t = t
        self.time_factor = 1.0

    def now(self) -> dt.datetime:
        return self.t


def _context(seq: Sequence, clock: HandClock, tmp: Path) -> NightContext:
    plan = plan_night(seq, NIGHT)
    return NightContext(seq=seq, plan=plan, rig=None, clock=clock, library=None, data_dir=tmp,  # type: ignore[arg-type]
                        progress=RunProgress(night=NIGHT.isoformat(), started=""), progress_store=ProgressStore(tmp))


def test_the_day_goes_to_darks_then_rest_then_cooling_before_the_night(tmp_path: Path) -> None:
    seq = _seq(by_day=True)
    clock = HandClock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    ctx = _context(seq, clock, tmp_path)
    begins = ctx.plan.begins(dusk_flats=True)
    assert begins == ctx.plan.sky_flat_windows[0].start
    now_due = due(ctx)
    assert (now_due.activity, now_due.until) == ("day_calibration", begins)

    ctx.progress.finished_activities.append("day_calibration")
    ctx.cooler_resting = True  # the day's darks are done: the cooler rests
    assert due(ctx).activity == "waiting"
    assert next_change(ctx, clock.t) == begins - LEAD, "the wait ends when the cooler must start again"
    clock.t = begins - LEAD + dt.timedelta(minutes=1)
    assert due(ctx).activity == "cooldown"
    ctx.seq = _seq(by_day=False)  # the file reloaded meanwhile: a resting cooler is still cooled for the night
    assert due(ctx).activity == "cooldown"
    ctx.cooler_resting = False
    assert due(ctx).activity == "waiting"


def test_without_darks_by_day_the_day_is_waited_through(tmp_path: Path) -> None:
    ctx = _context(_seq(by_day=False), HandClock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)), tmp_path)
    assert due(ctx).activity == "waiting"
