"""Recovery after a crash: jobs whose worker died go back to pending, and the temporary files
an interrupted write left are removed.

A worker marks its job `running` with its pid and the process's start time, so a pid the
system has since given to another process is not mistaken for our worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.library.store import Library

MAX_ATTEMPTS = 3


def process_start_token(pid: int) -> str | None:
    """Start time of a process (Linux /proc), so a reused pid is not mistaken for our worker."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int | None, token: str | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    current = process_start_token(pid)
    if current is None or token is None:
        return current is not None or token is None
    if current != token:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def recover_jobs(lib: Library) -> int:
    """Return jobs whose worker died to `pending` (or `failed` after repeated crashes)."""
    n = 0
    for row in lib.conn.execute("SELECT id, pid, pid_start, attempts FROM jobs WHERE state = 'running'").fetchall():
        if process_alive(row["pid"], row["pid_start"]):
            continue
        with lib.transaction() as c:
            if int(row["attempts"]) >= MAX_ATTEMPTS:
                c.execute(
                    "UPDATE jobs SET state = 'failed', reason = ?, finished_at = ? WHERE id = ? AND state = 'running'",
                    (f"worker died {row['attempts']} times; see the log", time.time(), row["id"]),
                )
            else:
                c.execute(
                    "UPDATE jobs SET state = 'pending', pid = NULL WHERE id = ? AND state = 'running'",
                    (row["id"],),
                )
        n += 1
    return n


def retry_failed(lib: Library) -> int:
    """Let groups whose last build failed be scheduled again."""
    with lib.transaction() as c:
        return int(c.execute("UPDATE jobs SET state = 'dismissed' WHERE state = 'failed'").rowcount)


def clean_partial_files(lib: Library) -> int:
    """Delete temporary files left by writes a crash interrupted (only when no job runs)."""
    running = lib.conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'running'").fetchone()[0]
    if running:
        return 0
    n = 0
    for folder in (lib.masters_dir, lib.frames_dir):
        if folder.exists():
            for part in folder.rglob(".*.part"):
                part.unlink(missing_ok=True)
                n += 1
    return n
