"""Flat history: which filters got flats on which night, and the light sessions since, so the
night takes flats at the sequence's cadence and never twice for the same sessions.

A session of a filter is a night with good lights in it (see `campaign`); tonight is one as soon
as lights of the filter are planned or taken. A filter's flats are due tonight by its cadence
(`calibration.flats.cadence`, or its own in `filter_cadence`):

- `session` (the default): every filter imaged tonight, as many flats as the library lacks for it
  (a missing or expired master flat): the night's flats as they always were.
- N (every N sessions): when N sessions have passed since its last flats (tonight included), or
  it never had any; then a fresh set, even if a master flat is still current.
- `completion`: when a target imaged in the filter has finished its campaign since the filter's
  last flats; then a fresh set.

A filter that already has a full set tonight (the master flat's `min_frames`) is never due again.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.library.queries.campaign import (
    campaign_progress,
    connection_and_frames,
    frames_prefixes,
    kept_lights,
    night_name,
    place_of,
)

if TYPE_CHECKING:
    from agent.config.campaign import FlatCadence
    from agent.config.model import Sequence
    from agent.library.store import Library


@dataclass(frozen=True)
class FilterFlatHistory:
    """One filter of the sequence: the nights with good flats, the light sessions, the cadence."""

    filter: str
    cadence: FlatCadence
    flat_nights: tuple[str, ...]  # oldest first
    sessions: tuple[str, ...]  # nights with good lights (tonight too when planned), oldest first
    flats_tonight: int

    def last_flats_before(self, night: str) -> str | None:
        earlier = [n for n in self.flat_nights if n < night]
        return earlier[-1] if earlier else None

    def sessions_since_flats(self, night: str) -> tuple[str, ...]:
        """Sessions after the last flats before `night`, up to and including `night`."""
        last = self.last_flats_before(night)
        return tuple(s for s in self.sessions if s <= night and (last is None or s > last))

    def to_dict(self, night: str) -> dict[str, Any]:
        return {
            "filter": self.filter,
            "cadence": self.cadence,
            "flat_nights": list(self.flat_nights),
            "sessions": list(self.sessions),
            "sessions_since_flats": len(self.sessions_since_flats(night)),
            "flats_tonight": self.flats_tonight,
        }


def _flat_nights(source: Library | sqlite3.Connection, camera: str) -> dict[str, dict[str, int]]:
    """Filter (casefolded) -> night -> good flats (kept at the door, not rejected) of this camera."""
    conn, frames_dir = connection_and_frames(source)
    prefixes = frames_prefixes(frames_dir)
    found: dict[str, dict[str, int]] = {}
    for path, filt, captured_at in conn.execute(
        "SELECT path, filter, captured_at FROM frames WHERE frame_type = 'flat' "
        "AND state IN ('accumulating', 'in_master') AND camera = ? AND filter IS NOT NULL",
        (camera,),
    ):
        night, _ = place_of(str(path), captured_at, prefixes)
        nights = found.setdefault(str(filt).casefold(), {})
        nights[night] = nights.get(night, 0) + 1
    return found


def flat_history(
    seq: Sequence, library: Library | sqlite3.Connection, night: str | dt.date, planned: Iterable[str] = ()
) -> list[FilterFlatHistory]:
    """Every filter of the sequence in wheel order; `planned` filters make tonight a session."""
    tonight = night_name(night)
    assert tonight is not None
    camera = seq.indi.devices.camera
    flats = _flat_nights(library, camera)
    sessions: dict[str, set[str]] = {}
    for light in kept_lights(library, seq.filters, camera):
        if light.good:
            sessions.setdefault(light.filter, set()).add(light.night)
    for name in planned:
        sessions.setdefault(name.casefold(), set()).add(tonight)
    policy = seq.calibration.flats
    out = []
    for name in seq.filters:
        nights = flats.get(name.casefold(), {})
        out.append(
            FilterFlatHistory(
                filter=name,
                cadence=policy.filter_cadence.get(name, policy.cadence),
                flat_nights=tuple(sorted(nights)),
                sessions=tuple(sorted(sessions.get(name.casefold(), ()))),
                flats_tonight=nights.get(tonight, 0),
            )
        )
    return out


def _completed_since(seq: Sequence, library: Library | sqlite3.Connection, night: str) -> dict[str, str]:
    """Filter (casefolded) -> the latest night a finished target imaged in it completed."""
    by_target: dict[str, list[Any]] = {}
    for p in campaign_progress(library, seq, night):
        by_target.setdefault(p.target, []).append(p)
    completed: dict[str, str] = {}
    for entries in by_target.values():
        if not all(p.finished for p in entries):
            continue
        done_on = max((p.last_night for p in entries if p.last_night), default=None)
        if done_on is None:
            continue
        for p in entries:
            key = p.filter.casefold()
            completed[key] = max(completed.get(key, done_on), done_on)
    return completed


def flats_due(
    seq: Sequence, library: Library | sqlite3.Connection, night: str | dt.date, planned: Iterable[str] = ()
) -> list[str]:
    """Filters that need flats tonight by their cadence, in wheel order (see the module's text)."""
    tonight = night_name(night)
    assert tonight is not None
    return _due(seq, library, tonight, flat_history(seq, library, tonight, planned))


def _due(
    seq: Sequence, library: Library | sqlite3.Connection, tonight: str, history: list[FilterFlatHistory]
) -> list[str]:
    full_set = seq.calibration.masters.flat.min_frames
    completed = (
        _completed_since(seq, library, tonight) if any(h.cadence == "completion" for h in history) else {}
    )
    due = []
    for h in history:
        if h.flats_tonight >= full_set:
            continue  # a full set tonight already: never twice
        since = h.sessions_since_flats(tonight)
        last = h.last_flats_before(tonight)
        if h.cadence == "session":
            wanted = tonight in h.sessions
        elif h.cadence == "completion":
            finished_on = completed.get(h.filter.casefold())
            wanted = bool(since) and finished_on is not None and (last is None or finished_on > last)
        else:
            wanted = bool(since) and (last is None or len(since) >= int(h.cadence))
        if wanted:
            due.append(h.filter)
    return due


def flats_wanted(
    seq: Sequence,
    library: Library | sqlite3.Connection,
    night: str | dt.date,
    needed: Mapping[str, int],
    planned: Iterable[str] = (),
) -> dict[str, int]:
    """Filter -> flats to take tonight, in wheel order: `needed` (what the library lacks for
    tonight's lights) for the filters due by cadence; a filter due by N sessions or completion
    gets at least a fresh set (the master flat's `min_frames`, less tonight's flats)."""
    tonight = night_name(night)
    assert tonight is not None
    history = flat_history(seq, library, tonight, planned)
    due = _due(seq, library, tonight, history)
    policy = seq.calibration.flats
    full_set = seq.calibration.masters.flat.min_frames
    taken = {h.filter: h.flats_tonight for h in history}
    out: dict[str, int] = {}
    for name in due:
        count = needed.get(name, 0)
        if policy.filter_cadence.get(name, policy.cadence) != "session":
            count = max(count, full_set - taken.get(name, 0))
        if count > 0:
            out[name] = count
    return out
