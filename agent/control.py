"""The control inbox: what the dashboard asks the agent to do, as files under `<data>/control/`.

The web process never drives hardware nor writes the library; it drops a request here and the
agent, which owns both, polls `pending_requests()` from its loop, acts, and calls `mark_done()`.
Each request is one JSON file written atomically, so a crash on either side loses nothing and
never leaves half a request:

    control/pending/<id>.json   waiting for the agent
    control/done/<id>.json      handled, with `ok` and a message for the person who asked
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ObsAgentError
from agent.status import atomic_write_text

CONTROL_DIR = "control"
# build_master: params {"frame_type", "key": ConfigKey.as_dict() with "temperature"}; build even
#               below the threshold; the master is marked forced.
# recalibrate_light: params {"frame_id": int}
# pause / resume / park: no params
ACTIONS: frozenset[str] = frozenset({"build_master", "recalibrate_light", "pause", "resume", "park"})
_ID = re.compile(r"^[0-9]{13}-[0-9a-f]{8}$")


class ControlError(ObsAgentError):
    """A control request is malformed or unknown."""


@dataclass
class ControlRequest:
    id: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    requested_at: float = 0.0
    requested_by: str = ""  # who asked: "web 192.168.1.20", "api"
    done_at: float | None = None
    ok: bool | None = None
    message: str = ""

    @property
    def pending(self) -> bool:
        return self.done_at is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ControlRequest:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in names})


def _dirs(data_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    base = Path(data_dir) / CONTROL_DIR
    return base / "pending", base / "done"


def submit(
    data_dir: str | os.PathLike[str], action: str, params: Mapping[str, Any] | None = None, requested_by: str = ""
) -> ControlRequest:
    """Queue a request for the agent; returns it with its id (sortable by time)."""
    if action not in ACTIONS:
        raise ControlError(f"unknown action {action!r}; one of {', '.join(sorted(ACTIONS))}")
    now = time.time()
    request = ControlRequest(
        id=f"{int(now * 1000):013d}-{secrets.token_hex(4)}",
        action=action,
        params=dict(params or {}),
        requested_at=now,
        requested_by=requested_by,
    )
    pending, _ = _dirs(data_dir)
    atomic_write_text(pending / f"{request.id}.json", json.dumps(request.as_dict(), default=str))
    return request


def _load(path: Path) -> ControlRequest | None:
    try:
        raw = json.loads(path.read_text())
        return ControlRequest.from_dict(raw) if isinstance(raw, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def pending_requests(data_dir: str | os.PathLike[str]) -> list[ControlRequest]:
    """Requests not yet handled, oldest first. Unreadable files are skipped (never raised)."""
    pending, _ = _dirs(data_dir)
    if not pending.is_dir():
        return []
    out = []
    for path in sorted(pending.glob("*.json")):
        request = _load(path)
        if request is not None and request.id == path.stem:
            out.append(request)
    return out


def mark_done(data_dir: str | os.PathLike[str], request_id: str, ok: bool, message: str = "") -> ControlRequest:
    """Record the outcome of a request and take it out of the pending queue."""
    if not _ID.match(request_id):
        raise ControlError(f"no control request {request_id!r}")
    pending, done = _dirs(data_dir)
    source = pending / f"{request_id}.json"
    request = _load(source)
    if request is None:
        raise ControlError(f"no pending control request {request_id}")
    request.done_at, request.ok, request.message = time.time(), ok, message
    atomic_write_text(done / f"{request_id}.json", json.dumps(request.as_dict(), default=str))
    source.unlink(missing_ok=True)
    return request


def get_request(data_dir: str | os.PathLike[str], request_id: str) -> ControlRequest | None:
    """A request, pending or done; None for an unknown (or malformed) id."""
    if not _ID.match(request_id):
        return None
    pending, done = _dirs(data_dir)
    for folder in (done, pending):
        path = folder / f"{request_id}.json"
        if path.is_file():
            return _load(path)
    return None


def recent_requests(data_dir: str | os.PathLike[str], limit: int = 20) -> list[ControlRequest]:
    """Newest requests first, pending and done together, for the dashboard."""
    pending, done = _dirs(data_dir)
    paths = [p for folder in (pending, done) if folder.is_dir() for p in folder.glob("*.json")]
    paths.sort(key=lambda p: p.stem, reverse=True)
    out = []
    for path in paths[:limit]:
        request = _load(path)
        if request is not None:
            out.append(request)
    return out
