"""The night as a `transitions` state machine.

The table below is the whole behaviour: which event moves the night from which state to which.
A safety guard is prepended to every transition except the ones into `safe`; automatic `to_*`
triggers are off. `on_enter` callbacks only record the state (quick); the long activities run in
the runner loop (`agent.night.runner`), one module per state in `agent.night.states`, and
each returns the event to fire next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from transitions import Machine, MachineError

log = logging.getLogger(__name__)

STATES = [
    "startup",  # connect devices, read the library, plan the night
    "cooldown",  # cooler to the set-point
    "waiting",  # nothing to do until the next window (clock-driven)
    "dusk_flats",  # sky flats in the evening window
    "panel_flats",  # flip-flat flats (when the policy says panel)
    "imaging",  # the planner's scheduled blocks
    "gap_calibration",  # cap closed: darks / bias / dark flats by the library's needs
    "dawn_flats",  # sky flats in the morning window
    "morning_calibration",  # after dawn flats: bias, dark flats and whatever darks are still missing
    "day_calibration",  # the day before the night (darks.by_day): cap closed, tonight's darks, bias, dark flats
    "closed",  # the sky may not be used (weather, clouds, disk): closed up, cap-closed calibration meanwhile
    "warmup",  # cooler off gently
    "park",  # cap closed, light off, mount parked
    "done",  # idle until the next night
    "safe",  # error: everything made safe, waiting for a person or the next night
]

# Events chosen by the dispatcher (what is due now) are allowed from every working state.
WORKING = [
    "cooldown",
    "waiting",
    "dusk_flats",
    "panel_flats",
    "imaging",
    "gap_calibration",
    "dawn_flats",
    "morning_calibration",
    "day_calibration",
    "closed",
]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "connected", "source": "startup", "dest": "cooldown"},
    {"trigger": "cooled", "source": "cooldown", "dest": "waiting"},
    {"trigger": "wait", "source": ["startup", *WORKING], "dest": "waiting"},
    {"trigger": "start_dusk_flats", "source": WORKING, "dest": "dusk_flats"},
    {"trigger": "start_panel_flats", "source": WORKING, "dest": "panel_flats"},
    {"trigger": "start_imaging", "source": WORKING, "dest": "imaging"},
    {"trigger": "start_gap", "source": WORKING, "dest": "gap_calibration"},
    {"trigger": "start_dawn_flats", "source": WORKING, "dest": "dawn_flats"},
    {"trigger": "start_morning_calibration", "source": WORKING, "dest": "morning_calibration"},
    {"trigger": "start_day_calibration", "source": WORKING, "dest": "day_calibration"},
    {"trigger": "cool_again", "source": WORKING, "dest": "cooldown"},  # after the day's rest
    {"trigger": "close_up", "source": ["startup", *WORKING], "dest": "closed"},
    {"trigger": "night_over", "source": ["startup", *WORKING], "dest": "warmup"},
    {"trigger": "warm", "source": "warmup", "dest": "park"},
    {"trigger": "parked", "source": "park", "dest": "done"},
    # Unsafe conditions, device loss or an unrecoverable error: no guard, from anywhere.
    {"trigger": "make_safe", "source": "*", "dest": "safe", "unless": []},
    {"trigger": "recovered", "source": "safe", "dest": "startup"},
]

# Events the dispatcher may return to move to the activity that is due.
DISPATCH_EVENTS = {
    "dusk_flats": "start_dusk_flats",
    "panel_flats": "start_panel_flats",
    "imaging": "start_imaging",
    "gap_calibration": "start_gap",
    "dawn_flats": "start_dawn_flats",
    "morning_calibration": "start_morning_calibration",
    "day_calibration": "start_day_calibration",
    "cooldown": "cool_again",
    "waiting": "wait",
    "closed": "close_up",
    "warmup": "night_over",
}


class NightModel:
    """The model the machine drives: knows its state and whether it is safe to go on."""

    state: str

    def __init__(self, is_safe: Callable[[], bool], on_state: Callable[[str], None]) -> None:
        self._is_safe = is_safe
        self._on_state = on_state

    def is_safe(self) -> bool:
        return bool(self._is_safe())

    def record_state(self) -> None:
        self._on_state(self.state)


def build_machine(model: NightModel, initial: str = "startup") -> Machine:
    """The machine over `model`; every transition but `make_safe` is guarded by `is_safe`."""
    table = []
    for t in TRANSITIONS:
        t = dict(t)
        if t["trigger"] != "make_safe":
            t["conditions"] = ["is_safe", *t.get("conditions", [])]
        else:
            t.pop("unless", None)
        table.append(t)
    return Machine(
        model=model,
        states=STATES,
        transitions=table,
        initial=initial,
        auto_transitions=False,
        after_state_change="record_state",
        ignore_invalid_triggers=False,
    )


def fire(model: NightModel, event: str) -> bool:
    """Fire an event; False (and a log line) when the guard refused it or it is not valid here."""
    try:
        ok = bool(getattr(model, event)())
    except (MachineError, AttributeError) as exc:
        log.error("event %s not allowed in state %s: %s", event, model.state, exc)
        return False
    if not ok:
        log.warning("event %s refused in state %s (safety guard)", event, model.state)
    return ok
