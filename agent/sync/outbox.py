"""The outbox: every master to send upstream, and its delivery state per target.

A master is queued once (keyed by its checksum) right after the library registers it;
`sweep_unqueued` catches any master a crash kept from being queued. A delivery is done
only after the remote size and checksum were read back and matched, and it is re-opened
when the manifest changes (a master superseded later), so the remote manifest follows.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.library.locations import database_folder, disk_path, stored_path
from agent.sync import manifest as mf
from agent.sync.schema import has_table, opened, transaction
from agent.sync.targets import SyncError

log = logging.getLogger(__name__)

DbLike = str | Path | sqlite3.Connection


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    sha256: str
    size_bytes: int
    local_path: str
    master_id: int | None
    manifest: dict[str, Any]
    manifest_version: int
    attempts: int = 0
    state: str = "pending"
    delivered_version: int = 0

    @property
    def remote_fits(self) -> str:
        return mf.remote_names(self.sha256)[0]

    @property
    def remote_manifest(self) -> str:
        return mf.remote_names(self.sha256)[1]

    @property
    def defects(self) -> tuple[Path, str, str, int] | None:
        """The master's defect map as queued: (local file, remote name, sha256, size), or None."""
        d = self.manifest.get("defects")
        if not isinstance(d, dict):
            return None
        local = Path(self.local_path).with_name(str(d["local_name"]))
        return local, str(d["remote"]), str(d["sha256"]), int(d["size"])


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts of one delivery, capped, with a little jitter
    so many queued masters do not retry in lock-step."""

    base_s: float = 5.0
    max_s: float = 600.0

    def delay(self, attempts: int) -> float:
        raw = min(self.max_s, self.base_s * 2 ** max(0, attempts - 1))
        return raw * (1.0 + 0.2 * random.random())


@dataclass
class SweepResult:
    enqueued: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)


def _row_dict(cur: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cur.description, row, strict=True)}


def _query(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, args)
    return [_row_dict(cur, r) for r in cur.fetchall()]


def _library_master_id(conn: sqlite3.Connection, path: Path) -> int | None:
    if not has_table(conn, "masters"):
        return None
    row = conn.execute(
        "SELECT id FROM masters WHERE path IN (?, ?)", (stored_path(database_folder(conn), path), str(path))
    ).fetchone()
    return int(row[0]) if row else None


def enqueue_master(db: DbLike, master_path: str | Path, manifest: dict[str, Any]) -> int:
    """Queue a master for upload; returns its outbox id. Idempotent: the same bytes queued
    twice keep one entry. The checksum and size are computed here from the file."""
    path = Path(master_path).resolve()
    if not path.is_file():
        raise SyncError(f"{path}: master file not found; it cannot be queued for sync")
    sha = mf.file_sha256(path)
    given = manifest.get("checksum")
    given_sha = given.get("sha256") if isinstance(given, dict) else given
    if given_sha and given_sha != sha:
        raise SyncError(f"{path}: file checksum {sha[:12]}… differs from its manifest {str(given_sha)[:12]}…")
    size = path.stat().st_size
    with opened(db) as conn:
        master_id = manifest.get("master_id")
        if master_id is None:
            master_id = _library_master_id(conn, path)
        full = mf.complete({**manifest, "master_id": master_id}, path, sha, size, mf.defects_entry(path, sha))
        with transaction(conn):
            row = conn.execute("SELECT id FROM sync_outbox WHERE sha256 = ?", (sha,)).fetchone()
            if row is not None:
                return int(row[0])
            cur = conn.execute(
                "INSERT INTO sync_outbox (sha256, size_bytes, local_path, master_id, manifest, enqueued_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                # relative to the data folder when inside it, so the folder can move
                (sha, size, stored_path(database_folder(conn), path), master_id, json.dumps(full, default=str),
                 time.time()),
            )
            return int(cur.lastrowid or 0)


def queue_library_masters(db: DbLike, master_ids: list[int]) -> list[int]:
    """Queue masters the library has just registered, by id; returns the outbox ids queued.

    A master that cannot be queued now is logged and left: `sweep_unqueued` finds it on the next pass.
    """
    queued: list[int] = []
    with opened(db) as conn:
        for master_id in master_ids:
            try:
                row = conn.execute("SELECT path FROM masters WHERE id = ?", (master_id,)).fetchone()
                if row is None:
                    raise LookupError(f"no master #{master_id} in the library")
                master_file = disk_path(database_folder(conn), str(row[0]))
                queued.append(enqueue_master(conn, master_file, mf.library_manifest(conn, master_id)))
            except Exception as exc:  # the master is registered; the sync sweep queues it if this fails
                log.warning("master #%d not queued for upload yet (%s); the sync sweep will queue it", master_id, exc)
    return queued


def _find_entry(conn: sqlite3.Connection, master: int | str | Path) -> dict[str, Any] | None:
    if isinstance(master, int):
        rows = _query(conn, "SELECT * FROM sync_outbox WHERE master_id = ?", (master,))
    elif isinstance(master, str) and len(master) == 64 and all(c in "0123456789abcdef" for c in master):
        rows = _query(conn, "SELECT * FROM sync_outbox WHERE sha256 = ?", (master,))
    else:
        path = Path(master).resolve()
        rows = _query(
            conn,
            "SELECT * FROM sync_outbox WHERE local_path IN (?, ?)",
            (stored_path(database_folder(conn), path), str(path)),
        )
    return rows[0] if rows else None


def mark_superseded(db: DbLike, master: int | str | Path, superseded_by: int | str | Path | None = None) -> bool:
    """Flag a queued master as superseded (by library master id, checksum or path); its
    remote manifest is rewritten on the next sync, the remote FITS is kept. Returns whether
    anything changed."""
    with opened(db) as conn, transaction(conn):
        entry = _find_entry(conn, master)
        if entry is None:
            return False
        manifest = json.loads(entry["manifest"])
        newer = _find_entry(conn, superseded_by) if superseded_by is not None else None
        newer_sha = newer["sha256"] if newer else None
        if manifest.get("superseded") and manifest.get("superseded_by") == newer_sha:
            return False
        manifest["superseded"] = True
        manifest["superseded_by"] = newer_sha or manifest.get("superseded_by")
        if isinstance(superseded_by, int):
            manifest["superseded_by_master_id"] = superseded_by
        conn.execute(
            "UPDATE sync_outbox SET manifest = ?, manifest_version = manifest_version + 1 WHERE id = ?",
            (json.dumps(manifest, default=str), entry["id"]),
        )
        return True


def sweep_unqueued(db: DbLike) -> SweepResult:
    """Queue library masters missing from the outbox (a crash between register and enqueue)
    and carry the library's supersession into queued manifests."""
    result = SweepResult()
    with opened(db) as conn:
        if not has_table(conn, "masters"):
            return result
        missing = _query(
            conn,
            "SELECT m.id, m.path FROM masters m WHERE NOT EXISTS "
            "(SELECT 1 FROM sync_outbox o WHERE o.master_id = m.id) ORDER BY m.id",
        )
        root = database_folder(conn)
        for row in missing:
            path = disk_path(root, str(row["path"]))
            if not path.is_file():
                result.missing_files.append(str(path))
                continue
            entry_id = enqueue_master(conn, path, mf.library_manifest(conn, int(row["id"])))
            conn.execute(
                "UPDATE sync_outbox SET master_id = ? WHERE id = ? AND master_id IS NULL", (row["id"], entry_id)
            )
            result.enqueued.append(entry_id)
        stale = _query(
            conn,
            "SELECT o.id, o.master_id, m.superseded_by FROM sync_outbox o JOIN masters m ON m.id = o.master_id "
            "WHERE m.superseded_by IS NOT NULL AND json_extract(o.manifest, '$.superseded') IS NOT 1",
        )
        for row in stale:
            if mark_superseded(conn, int(row["master_id"]), int(row["superseded_by"])):
                result.superseded.append(int(row["id"]))
    return result


# deliveries ---------------------------------------------------------------------------------


def due(conn: sqlite3.Connection, target: str, *, now: float | None = None, ignore_backoff: bool = False) -> list[OutboxEntry]:
    """Entries the target still needs (never sent, or whose manifest changed since), oldest
    first; those waiting out a backoff are left out unless `ignore_backoff`."""
    now = time.time() if now is None else now
    rows = _query(
        conn,
        "SELECT o.*, COALESCE(d.attempts, 0) AS attempts, COALESCE(d.state, 'pending') AS dstate, "
        "COALESCE(d.manifest_version, 0) AS delivered, COALESCE(d.next_attempt_at, 0) AS next_at "
        "FROM sync_outbox o LEFT JOIN sync_deliveries d ON d.outbox_id = o.id AND d.target = ? "
        "WHERE COALESCE(d.state, 'pending') != 'failed' "
        "AND (d.state IS NULL OR d.state = 'pending' OR d.manifest_version < o.manifest_version) "
        "ORDER BY o.id",
        (target,),
    )
    root = database_folder(conn)
    return [
        OutboxEntry(
            id=int(r["id"]),
            sha256=str(r["sha256"]),
            size_bytes=int(r["size_bytes"]),
            local_path=str(_local_file(conn, root, str(r["local_path"]), r["master_id"])),
            master_id=r["master_id"],
            manifest=json.loads(r["manifest"]),
            manifest_version=int(r["manifest_version"]),
            attempts=int(r["attempts"]),
            state=str(r["dstate"]),
            delivered_version=int(r["delivered"]),
        )
        for r in rows
        if ignore_backoff or float(r["next_at"]) <= now
    ]


def _local_file(conn: sqlite3.Connection, root: Path, recorded: str, master_id: int | None) -> Path:
    """Where a queued master is now. Entries queued before paths were relative name the folder
    as it was; if the file is not there, the library's own record of the master says where."""
    path = disk_path(root, recorded)
    if Path(recorded).is_absolute() and master_id is not None and not path.exists() and has_table(conn, "masters"):
        row = conn.execute("SELECT path FROM masters WHERE id = ?", (master_id,)).fetchone()
        if row is not None:
            return disk_path(root, str(row[0]))
    return path


def next_attempt_at(conn: sqlite3.Connection, target: str) -> float | None:
    """When the earliest backed-off delivery may be tried again (None: nothing waits)."""
    row = conn.execute(
        "SELECT MIN(d.next_attempt_at) FROM sync_deliveries d JOIN sync_outbox o ON o.id = d.outbox_id "
        "WHERE d.target = ? AND (d.state = 'pending' OR (d.state = 'done' AND d.manifest_version < o.manifest_version))",
        (target,),
    ).fetchone()
    return None if row[0] is None else float(row[0])


def record_done(conn: sqlite3.Connection, entry: OutboxEntry, target: str, bytes_sent: int) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO sync_deliveries (outbox_id, target, state, attempts, next_attempt_at, last_error, "
            "manifest_version, bytes_sent, confirmed_at) VALUES (?, ?, 'done', ?, 0, NULL, ?, ?, ?) "
            "ON CONFLICT(outbox_id, target) DO UPDATE SET state = 'done', attempts = excluded.attempts, "
            "next_attempt_at = 0, last_error = NULL, manifest_version = excluded.manifest_version, "
            "bytes_sent = sync_deliveries.bytes_sent + excluded.bytes_sent, "
            "confirmed_at = COALESCE(sync_deliveries.confirmed_at, excluded.confirmed_at)",
            (entry.id, target, entry.attempts + 1, entry.manifest_version, bytes_sent, time.time()),
        )


def record_failure(
    conn: sqlite3.Connection,
    entry: OutboxEntry,
    target: str,
    error: str,
    retry: RetryPolicy,
    *,
    permanent: bool = False,
) -> float:
    """Remember a failed attempt; returns when the next one is due."""
    attempts = entry.attempts + 1
    when = time.time() + retry.delay(attempts)
    state = "failed" if permanent else ("done" if entry.state == "done" else "pending")
    with transaction(conn):
        conn.execute(
            "INSERT INTO sync_deliveries (outbox_id, target, state, attempts, next_attempt_at, last_error) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(outbox_id, target) DO UPDATE SET state = excluded.state, "
            "attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, "
            "last_error = excluded.last_error",
            (entry.id, target, state, attempts, when, error),
        )
    return when


def retry_failed(db: DbLike, target: str | None = None) -> int:
    """Let deliveries that failed for good (missing or changed local file) be tried again."""
    with opened(db) as conn, transaction(conn):
        sql = "UPDATE sync_deliveries SET state = 'pending', next_attempt_at = 0 WHERE state = 'failed'"
        args: tuple[Any, ...] = ()
        if target is not None:
            sql += " AND target = ?"
            args = (target,)
        return int(conn.execute(sql, args).rowcount)


def confirmed_master_ids(conn: sqlite3.Connection, target: str | None = None) -> set[int]:
    """Library masters whose FITS was verified on a target (any target when None)."""
    sql = (
        "SELECT DISTINCT o.master_id FROM sync_outbox o JOIN sync_deliveries d ON d.outbox_id = o.id "
        "WHERE d.confirmed_at IS NOT NULL AND o.master_id IS NOT NULL"
    )
    args: tuple[Any, ...] = ()
    if target is not None:
        sql += " AND d.target = ?"
        args = (target,)
    return {int(r[0]) for r in conn.execute(sql, args)}


def outbox_status(db: DbLike, target: str | None = None) -> dict[str, Any]:
    """Queue figures for `obsagent library status` and `obsagent sync --status`: how many
    masters are queued, confirmed remote, still pending (bytes, oldest age), failed, per
    target, and what retention pruned. Target names are redacted URLs."""
    from agent.sync.targets import redact_url

    with opened(db) as conn:
        now = time.time()
        total = conn.execute("SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM sync_outbox").fetchone()
        targets = [str(r[0]) for r in conn.execute("SELECT DISTINCT target FROM sync_deliveries ORDER BY target")]
        if target is not None:
            target = redact_url(target) if "://" in target else target
            if target not in targets:
                targets.append(target)
        per_target: dict[str, Any] = {}
        for t in targets:
            rows = _query(
                conn,
                "SELECT o.id, o.size_bytes, o.enqueued_at, o.manifest_version, d.state, d.attempts, d.last_error, "
                "d.confirmed_at, d.manifest_version AS delivered, d.next_attempt_at FROM sync_outbox o "
                "LEFT JOIN sync_deliveries d ON d.outbox_id = o.id AND d.target = ?",
                (t,),
            )
            pending = [
                r for r in rows if r["state"] != "failed" and (r["state"] != "done" or r["delivered"] < r["manifest_version"])
            ]
            errors = [r for r in rows if r["last_error"]]
            per_target[t] = {
                "confirmed": sum(1 for r in rows if r["confirmed_at"] is not None),
                "pending": len(pending),
                "pending_bytes": sum(int(r["size_bytes"]) for r in pending if r["state"] != "done"),
                "oldest_pending_s": round(now - min(float(r["enqueued_at"]) for r in pending), 1) if pending else None,
                "failed": sum(1 for r in rows if r["state"] == "failed"),
                "retrying": sum(1 for r in pending if (r["attempts"] or 0) > 0),
                "last_error": errors[-1]["last_error"] if errors else None,
                "last_confirmed_at": max((float(r["confirmed_at"]) for r in rows if r["confirmed_at"]), default=None),
                "next_attempt_at": min((float(r["next_attempt_at"]) for r in pending if r["next_attempt_at"]), default=None),
            }
        confirmed_any = conn.execute(
            "SELECT COUNT(DISTINCT outbox_id) FROM sync_deliveries WHERE confirmed_at IS NOT NULL"
        ).fetchone()[0]
        pruned = conn.execute("SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM sync_pruned").fetchone()
        unqueued = 0
        if has_table(conn, "masters"):
            unqueued = conn.execute(
                "SELECT COUNT(*) FROM masters m WHERE NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.master_id = m.id)"
            ).fetchone()[0]
        return {
            "queued": int(total[0]),
            "queued_bytes": int(total[1]),
            "confirmed_remote": int(confirmed_any),
            "not_yet_queued": int(unqueued),
            "targets": per_target,
            "pruned_frames": int(pruned[0]),
            "pruned_bytes": int(pruned[1]),
        }
