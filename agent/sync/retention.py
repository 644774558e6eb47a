"""Local retention: delete raw calibration frames once the master built from them is safe upstream.

A frame is a candidate only when every master it went into has been verified on a target;
frames of unconfirmed masters are never touched, however full the disk. Two rules, either
or both: `max_age_days` prunes confirmed sources captured longer ago than that, and
`keep_free_bytes` prunes confirmed sources, oldest first, while the data directory's file
system has less free space than that. Only files under `roots` (default: the data
directory) are deleted, so frames ingested from a user's own folders stay theirs.

The library has no 'pruned' state for frames yet; pruned frames are recorded in the sync
table `sync_pruned` (file first, row after: a crash between the two is healed on the next
run, which finds the file gone and records it).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.library.locations import disk_path
from agent.sync.schema import has_table, opened, transaction

DiskUsage = Callable[[Path], Any]  # returns an object with .free (like shutil.disk_usage)


@dataclass(frozen=True)
class RetentionPolicy:
    max_age_days: float | None = None
    keep_free_bytes: int | None = None
    roots: tuple[Path, ...] = ()
    target: str | None = None  # confirmation needed on this target (None: any target)

    @property
    def enabled(self) -> bool:
        return self.max_age_days is not None or self.keep_free_bytes is not None


@dataclass
class PruneReport:
    pruned: list[tuple[int, str, int]] = field(default_factory=list)
    freed_bytes: int = 0
    free_before: int | None = None
    free_after: int | None = None
    short_bytes: int = 0
    held_unconfirmed: int = 0
    held_bytes: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "pruned": [{"frame_id": i, "path": p, "size": s} for i, p, s in self.pruned],
            "freed_bytes": self.freed_bytes,
            "free_before": self.free_before,
            "free_after": self.free_after,
            "short_bytes": self.short_bytes,
            "held_unconfirmed": self.held_unconfirmed,
            "held_bytes": self.held_bytes,
            "dry_run": self.dry_run,
        }


def _disk_usage(path: Path) -> Any:
    return shutil.disk_usage(path)


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def prune_raw_frames(
    db: str | Path | sqlite3.Connection,
    policy: RetentionPolicy,
    *,
    disk_usage: DiskUsage = _disk_usage,
    now: float | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Apply the policy once; returns what was (or, dry, would be) deleted and what is held."""
    report = PruneReport(dry_run=dry_run)
    now = time.time() if now is None else now
    with opened(db) as conn:
        if not policy.enabled or not has_table(conn, "master_sources"):
            return report
        root = _data_root(conn)
        roots = tuple(p.resolve() for p in policy.roots) or (root,)
        confirmed = _confirmed(conn, policy.target)
        rows = conn.execute(
            "SELECT f.id, f.path, f.size_bytes, COALESCE(f.captured_at, f.ingested_at) AS t, "
            "GROUP_CONCAT(ms.master_id) FROM frames f JOIN master_sources ms ON ms.frame_id = f.id "
            "WHERE f.id NOT IN (SELECT frame_id FROM sync_pruned) GROUP BY f.id ORDER BY t, f.id"
        ).fetchall()
        candidates: list[tuple[int, Path, int, float, int]] = []
        for frame_id, path, size, t, masters in rows:
            p = disk_path(root, str(path))  # recorded relative to the data folder
            ids = {int(m) for m in str(masters).split(",")}
            if not _under(p.resolve(), roots):
                continue
            if not ids <= confirmed:
                if p.exists():
                    report.held_unconfirmed += 1
                    report.held_bytes += int(size)
                continue
            candidates.append((int(frame_id), p, int(size), float(t or 0), min(ids)))
        free = int(disk_usage(root).free) if policy.keep_free_bytes is not None else None
        report.free_before = free
        cutoff = now - policy.max_age_days * 86400.0 if policy.max_age_days is not None else None
        for frame_id, p, size, t, master_id in candidates:
            if cutoff is not None and t < cutoff:
                reason = f"older than {policy.max_age_days:g} days"
            elif policy.keep_free_bytes is not None and free is not None and free < policy.keep_free_bytes:
                reason = f"free space under {policy.keep_free_bytes} bytes"
            else:
                continue
            freed = _delete(conn, frame_id, p, size, master_id, reason, now, dry_run)
            report.pruned.append((frame_id, str(p), freed))
            report.freed_bytes += freed
            if free is not None:
                free = free + freed if dry_run else int(disk_usage(root).free)
        report.free_after = free
        if policy.keep_free_bytes is not None and free is not None and free < policy.keep_free_bytes:
            report.short_bytes = policy.keep_free_bytes - free
    return report


def _delete(
    conn: sqlite3.Connection, frame_id: int, p: Path, size: int, master_id: int, reason: str, now: float, dry: bool
) -> int:
    present = p.is_file()
    freed = p.stat().st_size if present else 0
    if dry:
        return freed
    if present:
        p.unlink()
    with transaction(conn):
        conn.execute(
            "INSERT OR IGNORE INTO sync_pruned (frame_id, path, size_bytes, master_id, reason, pruned_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (frame_id, str(p), freed if present else 0, master_id, reason if present else "already gone", now),
        )
    return freed


def _confirmed(conn: sqlite3.Connection, target: str | None) -> set[int]:
    from agent.sync.outbox import confirmed_master_ids

    return confirmed_master_ids(conn, target)


def _data_root(conn: sqlite3.Connection) -> Path:
    """The folder holding the database: the data directory."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return Path(str(row[2])).resolve().parent
