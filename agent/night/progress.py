"""What the night runner persists: the state it was in and notes for the morning report.

Counts of frames are never kept here: they come from the library, so a resumed night captures
exactly what is still missing. The file is written atomically on every state change.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.fitsfile import atomic_output

log = logging.getLogger(__name__)


@dataclass
class RunProgress:
    night: str  # the evening's local date, YYYY-MM-DD
    state: str = "startup"
    started: str = ""
    updated: str = ""
    resumed: int = 0  # how many times this night was resumed after a stop
    finished_activities: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)  # cause -> how many times tonight
    safety: list[dict[str, Any]] = field(default_factory=list)  # each close-up: when, why, how fast, reopened
    last_unsafe: str | None = None  # the last unsafe reading (clock time): the hold outlives a restart

    def record_fault(self, cause: str) -> int:
        """Count one fault of this cause; returns tonight's count so far."""
        self.faults[cause] = self.faults.get(cause, 0) + 1
        return self.faults[cause]

    def note(self, when: dt.datetime, kind: str, text: str) -> None:
        self.events.append({"time": when.isoformat(timespec="seconds"), "kind": kind, "text": text})
        if kind == "warning" and text not in self.warnings:
            self.warnings.append(text)


class ProgressStore:
    """One JSON file per night under `<data>/nights/`."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "nights"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, night: str) -> Path:
        return self.dir / f"{night}.json"

    def load(self, night: str) -> RunProgress | None:
        path = self.path(night)
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
            known = {f for f in RunProgress.__dataclass_fields__}
            return RunProgress(**{k: v for k, v in raw.items() if k in known})
        except (ValueError, TypeError):
            # A damaged progress file loses only notes: counts live in the library.
            broken = path.with_suffix(".json.damaged")
            os.replace(path, broken)
            return None

    def save(self, progress: RunProgress) -> None:
        """Written atomically; a data folder that vanished (a pulled disk) loses only this update,
        and is never made again on the disk it was mounted over."""
        if not self.dir.is_dir():
            log.error("night progress not saved: %s is gone", self.dir)
            return
        try:
            with atomic_output(self.path(progress.night), "w") as fh:
                json.dump(asdict(progress), fh, indent=1)
        except OSError as exc:
            if self.dir.exists():
                raise
            log.error("night progress not saved: %s is gone (%s)", self.dir, exc)

    def nights(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.json"))
