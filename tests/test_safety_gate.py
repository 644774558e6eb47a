"""The safety gate's rules, on a hand-moved clock: unsafe closes the sky at once, it reopens only
after the hysteresis, a few cloudy lights in a row pause imaging, a full disk holds capture."""

from __future__ import annotations

import datetime as dt
import threading

from agent.night.safety import CLOUDY_IN_A_ROW, Reading, SafetyGate, SkyStop

T0 = dt.datetime(2026, 12, 1, 22, 0, tzinfo=dt.UTC)


class HandClock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> dt.datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += dt.timedelta(**kw)


def test_unsafe_closes_at_once_and_reopens_only_after_the_hysteresis() -> None:
    clock = HandClock()
    woken: list[int] = []
    gate = SafetyGate(clock, resume_after_s=600, wake=lambda: woken.append(1))
    gate.update(Reading(True, []))
    assert gate.sky_ok()
    gate.update(Reading(False, ["rain 2.0 mm/h"]))
    assert gate.unsafe.is_set() and woken, "an unsafe reading wakes the runner"
    assert not gate.sky_ok()
    assert "rain" in (gate.hold_reason() or "")
    clock.advance(minutes=1)
    gate.update(Reading(True, []))
    assert not gate.unsafe.is_set()
    clock.advance(minutes=8)
    assert not gate.sky_ok(), "safe for 8 min is not the 10 min hysteresis"
    gate.update(Reading(False, ["humidity 96 %"]))  # a relapse starts the hysteresis again
    clock.advance(minutes=1)
    gate.update(Reading(True, []))
    clock.advance(minutes=9, seconds=59)
    assert not gate.sky_ok()
    clock.advance(seconds=2)
    assert gate.sky_ok()


def test_a_restarted_night_keeps_the_hysteresis_of_the_last_unsafe_reading() -> None:
    clock = HandClock()
    gate = SafetyGate(clock, resume_after_s=600, last_unsafe=T0 - dt.timedelta(minutes=3))
    gate.update(Reading(True, []))
    assert not gate.sky_ok()
    clock.advance(minutes=7, seconds=1)
    assert gate.sky_ok()


def test_cloudy_lights_in_a_row_pause_imaging_and_a_clear_one_resets_the_count() -> None:
    clock = HandClock()
    gate = SafetyGate(clock, resume_after_s=600)
    for _ in range(CLOUDY_IN_A_ROW - 1):
        assert gate.report_light(cloudy=True) is None
    assert gate.report_light(cloudy=False) is None
    for _ in range(CLOUDY_IN_A_ROW - 1):
        gate.report_light(cloudy=True)
    assert gate.sky_ok()
    note = gate.report_light(cloudy=True)
    assert note and "pauses" in note
    assert not gate.sky_ok() and gate.clouded()
    clock.advance(minutes=16)
    assert gate.sky_ok(), "the first pause is 15 minutes"


def test_disk_low_holds_until_space_returns() -> None:
    gate = SafetyGate(HandClock(), resume_after_s=600)
    gate.set_disk_low("disk low: 10 MB free")
    assert gate.hold_reason() == "disk low: 10 MB free"
    gate.set_disk_low(None)
    assert gate.sky_ok()


def test_the_camera_stops_for_weather_only_while_the_telescope_is_open() -> None:
    abort = threading.Event()
    gate = SafetyGate(HandClock(), resume_after_s=600)
    stop = SkyStop(abort, gate)
    gate.update(Reading(False, ["rain"]))
    assert stop.is_set(), "a light is stopped at once"
    stop.covered = True
    assert not stop.is_set(), "a dark behind the closed cap goes on"
    abort.set()
    assert stop.is_set(), "a stop request stops everything"
