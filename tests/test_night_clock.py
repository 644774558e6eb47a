"""A clock that jumps back (a restarted simulator, a corrected Pi clock) is said in the night's report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from agent.night.progress import RunProgress
from agent.night.runner import NightRunner


@dataclass
class FakeNight:
    """Just what the clock watch reads and writes: the time, the progress, the notes."""

    times: list[dt.datetime]
    progress: RunProgress = field(default_factory=lambda: RunProgress("2026-11-22"))
    notes: list[tuple[str, str]] = field(default_factory=list)

    def now(self) -> dt.datetime:
        return self.times.pop(0)

    def note(self, kind: str, text: str) -> None:
        self.notes.append((kind, text))
        self.progress.note(dt.datetime(2026, 11, 22, tzinfo=dt.UTC), kind, text)


def watch(times: list[dt.datetime]) -> FakeNight:
    night = FakeNight(list(times))
    runner = NightRunner.__new__(NightRunner)
    runner._last_clock = None
    for _ in times:
        runner._watch_clock(night)  # type: ignore[arg-type]
    return night


def at(hour: int, minute: int = 0, second: int = 0) -> Any:
    return dt.datetime(2026, 11, 22, hour, minute, second, tzinfo=dt.UTC)


def test_a_jump_back_of_hours_is_noted_and_counted() -> None:
    night = watch([at(20), at(21), at(18, 30), at(18, 31)])
    assert night.progress.faults == {"clock went back": 1}
    (kind, text), = night.notes
    assert kind == "warning" and "went back by 2:30:00" in text and "2026-11-22 21:00:00" in text
    assert text in night.progress.warnings  # so the morning report shows it


def test_time_going_forward_or_jitter_is_not_reported() -> None:
    night = watch([at(20), at(20, 0, 30), at(20, 0, 1), at(23)])  # 29 s back: clock jitter, not a jump
    assert night.notes == [] and night.progress.faults == {}
