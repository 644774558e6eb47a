"""Campaign progress: each exposure entry's good lights over all nights, and tonight's share.

A sequence file's `count` is a campaign total, so "how many are left" is a library question
asked every night (and before every frame), never a number kept in memory.

What counts:
- `done`: good lights of the entry over all nights. A light is good unless the library's gates
  refused it: quarantined at the door (unreadable, no key), rejected, or failed calibration (e.g.
  too many pixels clipped). A light still waiting for calibration counts: it was captured well.
- `tonight`: every light captured in the night being planned that the library kept (rejected and
  failed ones too): the per-night cap bounds the time a night spends, and a night that spent it
  on lights a gate later refused does not spend it twice. The next night makes them up.

A light belongs to a target by its folder (`frames/<night>/<target>/`, where the night stores
its captures; a file from elsewhere by the folder it sits in), to an entry by its filter and
exposure, and by its readout mode only when a target has two entries that differ in nothing else.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.library.captures import slug
from agent.library.queries.lights import night_and_target

if TYPE_CHECKING:
    from agent.config.model import Exposure, Sequence, Target
    from agent.library.store import Library

ExposureKey = tuple[str, str, float, str | None]
"""(target, filter, exposure in seconds, readout mode) of one exposure entry."""


@dataclass(frozen=True)
class TargetProgress:
    """One exposure entry of one target: good lights so far against the campaign total."""

    target: str
    filter: str
    exposure: float
    readout_mode: str | None
    done: int
    total: int
    tonight: int
    per_night: int | None
    finished: bool
    nights: tuple[str, ...] = field(default=())  # nights that gave good lights, oldest first

    @property
    def key(self) -> ExposureKey:
        return (self.target, self.filter, self.exposure, self.readout_mode)

    @property
    def remaining(self) -> int:
        """Good lights still missing from the campaign."""
        return max(0, self.total - self.done)

    @property
    def remaining_tonight(self) -> int:
        """Lights tonight may still take: what the campaign misses, within the night's cap."""
        left = self.remaining
        if self.per_night is not None:
            left = min(left, self.per_night - self.tonight)
        return max(0, left)

    @property
    def last_night(self) -> str | None:
        return self.nights[-1] if self.nights else None

    def label(self) -> str:
        """'M31 L 300s' (with the readout mode when the entry names one)."""
        mode = f" mode {self.readout_mode}" if self.readout_mode else ""
        return f"{self.target} {self.filter} {self.exposure:g}s{mode}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "filter": self.filter,
            "exposure": self.exposure,
            "readout_mode": self.readout_mode,
            "done": self.done,
            "total": self.total,
            "tonight": self.tonight,
            "per_night": self.per_night,
            "remaining": self.remaining,
            "finished": self.finished,
            "nights": list(self.nights),
            "last_night": self.last_night,
        }


@dataclass(frozen=True)
class _Light:
    night: str
    target: str  # the folder name
    filter: str  # casefolded
    exposure: float
    readout_mode: str | None  # casefolded
    good: bool


def night_name(night: str | dt.date | None) -> str | None:
    return night.isoformat() if isinstance(night, dt.date) else night


def connection_and_frames(source: Library | sqlite3.Connection) -> tuple[sqlite3.Connection, Path]:
    if isinstance(source, sqlite3.Connection):
        db_file = source.execute("PRAGMA database_list").fetchone()[2]
        return source, Path(db_file).parent / "frames"
    return source.conn, source.frames_dir


def frames_prefixes(frames_dir: Path) -> tuple[str, ...]:
    """How the library may have recorded the frames folder: relative to the data folder, or absolute."""
    return (frames_dir.name, str(frames_dir.resolve()), str(frames_dir))


def place_of(path: str, captured_at: float | None, prefixes: tuple[str, ...]) -> tuple[str, str]:
    for prefix in prefixes:
        if path.startswith(prefix + "/"):
            return night_and_target(path, captured_at, prefix)
    return night_and_target(path, captured_at, prefixes[1])


def _same_exposure(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-3 + 1e-6 * b


def kept_lights(
    source: Library | sqlite3.Connection, filters: Iterable[str] | None = None, camera: str | None = None
) -> list[_Light]:
    """Lights the library kept (not quarantined), with their night and target folder."""
    conn, frames_dir = connection_and_frames(source)
    prefixes = frames_prefixes(frames_dir)
    sql = (
        "SELECT f.path, f.filter, f.exposure, f.readout_mode, f.captured_at, f.state, l.status "
        "FROM frames f LEFT JOIN lights l ON l.frame_id = f.id "
        "WHERE f.frame_type = 'light' AND f.state IN ('light', 'rejected')"
    )
    args: list[object] = []
    if filters is not None:
        names = sorted({f.casefold() for f in filters})
        sql += f" AND lower(f.filter) IN ({', '.join('?' * len(names))})"
        args += names
    if camera is not None:
        sql += " AND f.camera = ?"
        args.append(camera)
    out = []
    for path, filt, exposure, mode, captured_at, state, status in conn.execute(sql, args):
        if exposure is None or filt is None:
            continue
        night, target = place_of(str(path), captured_at, prefixes)
        good = state == "light" and status != "failed"
        out.append(_Light(night, target, str(filt).casefold(), float(exposure),
                          None if mode is None else str(mode).casefold(), good))  # fmt: skip
    return out


def _mode_matters(target: Target, entry: Exposure) -> bool:
    """A target with two entries of one filter and exposure tells them apart by readout mode."""
    return any(
        other is not entry and other.filter.casefold() == entry.filter.casefold()
        and _same_exposure(other.exposure, entry.exposure)
        for other in target.exposures
    )  # fmt: skip


def _entry_progress(
    seq: Sequence, target: Target, entry: Exposure, lights: list[_Light], night: str | None
) -> TargetProgress:
    mode = target.readout_mode_for(entry, seq.camera.readout_mode)
    folders = {target.name, slug(target.name)}
    check_mode = _mode_matters(target, entry)
    wanted_mode = None if mode is None else mode.casefold()
    mine = [
        light for light in lights
        if light.target in folders and light.filter == entry.filter.casefold()
        and _same_exposure(light.exposure, entry.exposure)
        and (not check_mode or light.readout_mode == wanted_mode)
    ]  # fmt: skip
    good = [light for light in mine if light.good]
    done = len(good)
    tonight = sum(1 for light in mine if light.night == night) if night is not None else 0
    return TargetProgress(
        target=target.name, filter=entry.filter, exposure=entry.exposure, readout_mode=mode, done=done,
        total=entry.count, tonight=tonight, per_night=entry.per_night, finished=done >= entry.count,
        nights=tuple(sorted({light.night for light in good})),
    )  # fmt: skip


def campaign_progress(
    source: Library | sqlite3.Connection, seq: Sequence, night: str | dt.date | None = None
) -> list[TargetProgress]:
    """Every exposure entry of the sequence, in file order; `tonight` counts the lights of `night`."""
    lights = kept_lights(source, {e.filter for t in seq.targets for e in t.exposures})
    name = night_name(night)
    return [_entry_progress(seq, t, e, lights, name) for t in seq.targets for e in t.exposures]


def entry_progress(
    source: Library | sqlite3.Connection,
    seq: Sequence,
    target: str,
    filter_name: str,
    exposure: float,
    readout_mode: str | None,
    night: str | dt.date | None = None,
) -> TargetProgress | None:
    """The progress of the one entry a planned block shoots (None if the sequence has no such entry)."""
    for t in seq.targets:
        if t.name != target:
            continue
        for e in t.exposures:
            if (
                e.filter == filter_name
                and _same_exposure(e.exposure, exposure)
                and t.readout_mode_for(e, seq.camera.readout_mode) == readout_mode
            ):
                return _entry_progress(seq, t, e, kept_lights(source, [filter_name]), night_name(night))
    return None


def campaign_remaining(
    source: Library | sqlite3.Connection, seq: Sequence, night: str | dt.date
) -> dict[ExposureKey, int]:
    """Lights each entry may still take in `night`: min(what the campaign misses, the night's cap)."""
    return {p.key: p.remaining_tonight for p in campaign_progress(source, seq, night)}


def campaign_summary(progress: list[TargetProgress]) -> list[dict[str, Any]]:
    """Per target, in file order: its entries, the nights that contributed, the last, finished or not."""
    by_target: dict[str, list[TargetProgress]] = {}
    for p in progress:
        by_target.setdefault(p.target, []).append(p)
    out = []
    for target, entries in by_target.items():
        nights = sorted({n for p in entries for n in p.nights})
        out.append(
            {
                "target": target,
                "finished": all(p.finished for p in entries),
                "done": sum(min(p.done, p.total) for p in entries),
                "total": sum(p.total for p in entries),
                "nights": len(nights),
                "last_night": nights[-1] if nights else None,
                "exposures": [p.to_dict() for p in entries],
            }
        )
    return out
