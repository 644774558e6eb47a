"""The night's state table: guarded transitions, no automatic ones, safe reachable from anywhere."""

from __future__ import annotations

import pytest

from agent.night.machine import DISPATCH_EVENTS, STATES, NightModel, build_machine, fire
from agent.night.states import ACTIVITIES


def make(initial: str = "startup", safe: bool = True) -> tuple[NightModel, list[str]]:
    seen: list[str] = []
    flag = {"safe": safe}
    model = NightModel(is_safe=lambda: flag["safe"], on_state=seen.append)
    build_machine(model, initial=initial)
    model.flag = flag  # type: ignore[attr-defined]
    return model, seen


def test_a_whole_night_in_order() -> None:
    model, seen = make()
    for event in ("connected", "cooled", "start_dusk_flats", "start_imaging", "start_gap", "start_imaging",
                  "start_dawn_flats", "start_morning_calibration", "night_over", "warm", "parked"):
        assert fire(model, event), event
    assert seen == ["cooldown", "waiting", "dusk_flats", "imaging", "gap_calibration", "imaging", "dawn_flats",
                    "morning_calibration", "warmup", "park", "done"]


def test_no_automatic_to_state_triggers() -> None:
    model, _ = make()
    assert not hasattr(model, "to_imaging")


def test_unsafe_blocks_every_transition_but_make_safe() -> None:
    model, _ = make("imaging")
    model.flag["safe"] = False  # type: ignore[attr-defined]
    assert not fire(model, "start_gap")
    assert model.state == "imaging"
    assert fire(model, "make_safe")
    assert model.state == "safe"


@pytest.mark.parametrize("state", STATES)
def test_safe_is_reachable_from_every_state(state: str) -> None:
    model, _ = make(state)
    assert fire(model, "make_safe")
    assert model.state == "safe"


def test_invalid_event_is_refused_not_raised() -> None:
    model, _ = make("startup")
    assert not fire(model, "parked")
    assert model.state == "startup"


def test_every_working_state_has_an_activity_and_every_dispatch_target_a_state() -> None:
    for state in STATES:
        if state not in ("done", "safe"):
            assert state in ACTIVITIES, state
    assert set(DISPATCH_EVENTS) <= set(STATES)
