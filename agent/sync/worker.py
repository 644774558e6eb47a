"""The sync worker: sends every due outbox entry to one target, verifies, marks it done.

Per entry: the FITS goes first (skipped when the remote copy already matches: content
addressed names make a re-upload harmless), then its defect map if it has one, then its
manifest; each is read back and compared (size and sha256) before the delivery is marked
done. A failure backs that entry off exponentially; a target that cannot be reached ends
the pass so a dead link is not hammered once per queued master. One worker per data
directory holds a lock while it sends, so `obsagent sync --once` and the agent's background
thread never interleave.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.sync import manifest as mf
from agent.sync.outbox import (
    OutboxEntry,
    RetryPolicy,
    due,
    next_attempt_at,
    queue_library_masters,
    record_done,
    record_failure,
    sweep_unqueued,
)
from agent.sync.retention import PruneReport, RetentionPolicy, prune_raw_frames
from agent.sync.schema import DB_NAME, opened
from agent.sync.targets import (
    SyncError,
    Target,
    TargetUnreachable,
    Throttle,
    UploadStopped,
    describe_error,
    open_target,
)

log = logging.getLogger(__name__)

LOCK_NAME = ".sync.lock"


class LocalFileProblem(SyncError):
    """The master on local disk is missing or no longer matches its queued checksum."""


class RemoteMismatch(SyncError):
    """The remote copy read back differs from what was sent."""


class SyncBusy(SyncError):
    """Another sync worker holds this data directory."""


@dataclass
class CycleReport:
    target: str
    uploaded: list[int] = field(default_factory=list)
    already_remote: list[int] = field(default_factory=list)
    manifests_updated: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    unreachable: str | None = None
    bytes_sent: int = 0
    left: int = 0
    busy: bool = False
    pruned: PruneReport | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and self.unreachable is None and not self.left and not self.busy

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "uploaded": self.uploaded,
            "already_remote": self.already_remote,
            "manifests_updated": self.manifests_updated,
            "failed": [{"outbox_id": i, "error": e} for i, e in self.failed],
            "unreachable": self.unreachable,
            "bytes_sent": self.bytes_sent,
            "left": self.left,
            "busy": self.busy,
            "pruned": self.pruned.as_dict() if self.pruned else None,
        }


def db_file(data: str | Path) -> Path:
    p = Path(data)
    return p / DB_NAME if p.is_dir() or not p.suffix else p


@contextmanager
def worker_lock(db_path: Path) -> Iterator[None]:
    """Exclusive, non-blocking; released by the kernel if the holder dies (kill -9)."""
    path = db_path.parent / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the kernel applies the user's umask
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise SyncBusy(f"another sync worker (pid {holder}) is running on {db_path.parent}; wait for it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


class _HashingReader(io.RawIOBase):
    """Reads the local master while hashing it, so the bytes sent are the bytes checked."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def close(self) -> None:
        self._fh.close()
        super().close()


def send_file(target: Target, local: Path, remote: str, sha256: str, size: int, throttle: Throttle, what: str) -> int:
    """Put one local file under `remote` unless a matching copy is there; read it back and compare.
    Returns the bytes sent (0 when the remote copy already matched)."""
    if target.size(remote) == size and target.sha256(remote) == sha256:
        log.info("%s already on %s", remote, target.name)
        return 0
    if not local.is_file():
        raise LocalFileProblem(f"{local}: {what} is missing; it cannot be sent")
    reader = _HashingReader(local)

    def matches() -> None:
        if reader.sha.hexdigest() != sha256 or reader.size != size:
            raise LocalFileProblem(f"{local}: {what} changed after it was queued; not sent")

    try:
        sent = target.upload(lambda: reader, remote, throttle, before_commit=matches)
    finally:
        reader.close()
    got = target.size(remote)
    if got != size or target.sha256(remote) != sha256:
        raise RemoteMismatch(f"{remote}: remote copy does not match after upload (size {got})")
    return sent


def send_entry(target: Target, entry: OutboxEntry, throttle: Throttle) -> tuple[int, bool]:
    """Deliver one entry: the master, its defect map, then the manifest (which says both are
    there); returns (bytes sent, whether the FITS itself was uploaded)."""
    sent = 0
    uploaded = False
    if entry.state != "done":
        n = send_file(target, Path(entry.local_path), entry.remote_fits, entry.sha256, entry.size_bytes, throttle,
                      "master file")  # fmt: skip
        sent += n
        uploaded = n > 0
        if entry.defects is not None:
            local, remote, sha, size = entry.defects
            sent += send_file(target, local, remote, sha, size, throttle, "master's defect map")
    body = mf.encode(entry.manifest)
    digest = hashlib.sha256(body).hexdigest()
    if not (target.size(entry.remote_manifest) == len(body) and target.sha256(entry.remote_manifest) == digest):
        sent += target.upload(lambda: io.BytesIO(body), entry.remote_manifest, throttle)
        if target.sha256(entry.remote_manifest) != digest:
            raise RemoteMismatch(f"{entry.remote_manifest}: remote manifest does not match after upload")
    return sent, uploaded


class SyncWorker:
    """Sends the outbox of one data directory to one target, once or in a background thread."""

    def __init__(
        self,
        data: str | Path,
        target_url: str | None = None,
        *,
        bandwidth_kbps: float | None = None,
        retry: RetryPolicy | None = None,
        retention: RetentionPolicy | None = None,
        poll_s: float = 60.0,
    ) -> None:
        self.db_path = db_file(data)
        self.target = open_target(target_url)
        self.bandwidth = bandwidth_kbps * 1000.0 if bandwidth_kbps else None
        self.retry = retry or RetryPolicy()
        self.retention = retention
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_report: CycleReport | None = None

    @property
    def target_name(self) -> str:
        return self.target.name

    def run_once(self, *, ignore_backoff: bool = False) -> CycleReport:
        """One pass over the due entries (all of them with `ignore_backoff`)."""
        report = CycleReport(self.target.name)
        try:
            with worker_lock(self.db_path), opened(self.db_path) as conn:
                sweep_unqueued(conn)
                entries = due(conn, self.target.name, ignore_backoff=ignore_backoff)
                for i, entry in enumerate(entries):
                    if self._stop.is_set():
                        report.left = len(entries) - i
                        break
                    try:
                        sent, uploaded = send_entry(self.target, entry, Throttle(self.bandwidth, self._stop))
                    except UploadStopped:
                        report.left = len(entries) - i
                        break
                    except Exception as exc:  # every failure is recorded on its entry and retried
                        error = describe_error(exc)
                        permanent = isinstance(exc, LocalFileProblem)
                        record_failure(conn, entry, self.target.name, error, self.retry, permanent=permanent)
                        report.failed.append((entry.id, error))
                        log.warning("sync of %s to %s failed: %s", entry.remote_fits, self.target.name, error)
                        if not permanent:
                            self.target.close()
                        if isinstance(exc, TargetUnreachable):
                            report.unreachable = error
                            report.left = len(entries) - i - 1
                            break
                        continue
                    record_done(conn, entry, self.target.name, sent)
                    report.bytes_sent += sent
                    if uploaded:
                        report.uploaded.append(entry.id)
                    elif entry.state == "done":
                        report.manifests_updated.append(entry.id)
                    else:
                        report.already_remote.append(entry.id)
                if self.retention is not None:
                    report.pruned = prune_raw_frames(conn, self.retention)
        except SyncBusy as exc:
            report.busy = True
            log.info("%s", exc)
        self.last_report = report
        return report

    def _next_wait(self, report: CycleReport) -> float:
        with opened(self.db_path) as conn:
            if due(conn, self.target.name) and report.unreachable is None and not report.busy:
                return 0.0
            nxt = next_attempt_at(conn, self.target.name)
        wait = self.poll_s
        if nxt is not None:
            wait = min(wait, max(0.05, nxt - time.time()))
        return wait

    def run_forever(self) -> None:
        """Pass after pass until `stop()`; waits for new work, a backoff to expire or `wake()`."""
        while not self._stop.is_set():
            try:
                report = self.run_once()
                wait = self._next_wait(report)
            except Exception:  # a broken pass must not end the agent's sync thread
                log.exception("sync pass to %s failed", self.target.name)
                wait = self.poll_s
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()
        self.target.close()

    def start(self) -> threading.Thread:
        """Run in a background thread (the agent's), returning it."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="obsagent-sync", daemon=True)
        self._thread.start()
        return self._thread

    def wake(self) -> None:
        """Start the next pass now (a master was just queued)."""
        self._wake.set()

    def queue_masters(self, master_ids: list[int]) -> None:
        """Queue masters the library just registered and start a pass to send them."""
        queue_library_masters(self.db_path, master_ids)
        self.wake()

    def make_room(self, free_bytes: int) -> tuple[int, int]:
        """A low disk (the night asks): delete raw frames of masters verified upstream, oldest
        first, until `free_bytes` are free. Returns (frames deleted, bytes freed)."""
        report = prune_raw_frames(self.db_path, RetentionPolicy(keep_free_bytes=free_bytes))
        return len(report.pruned), report.freed_bytes

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
