"""The build worker: pending jobs run one after another in a spawned process, so stacking never
delays the next exposure.

The agent's runner loop calls `BuildRunner.poll()` between exposures (it never blocks) and
`new_masters()` to learn what was registered, so it can queue those masters for upload; the CLI
waits. The worker process writes to the database only; everything the caller learns it reads
back from there.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent.library.build_job import run_job
from agent.library.build_plan import next_pending, schedule
from agent.library.keys import LibraryPolicy
from agent.library.recipes import DEFAULT_RECIPE
from agent.library.recovery import MAX_ATTEMPTS, recover_jobs
from agent.library.store import Library

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from agent.library.sweep import SweepReport

SWEEP_INTERVAL_S = 300.0


def drain(lib: Library, policy: LibraryPolicy | None, recipe: str = DEFAULT_RECIPE) -> list[int]:
    """Run pending jobs in build order until none is left; with a policy, groups that became
    ready (flats whose dark flat was just built) are scheduled and run too. Returns the ids of
    the jobs run (done or failed; `build_job.masters_of_jobs` gives their masters)."""
    done: list[int] = []
    while True:
        job = next_pending(lib)
        if job is None and policy is not None:
            schedule(lib, policy)
            job = next_pending(lib)
        if job is None:
            return done
        run_job(lib, job, recipe)
        done.append(job)


def worker_main(root: str, policy: LibraryPolicy | None, recipe: str) -> None:
    """The worker process: its own connection to the library, drained to the end."""
    logging.basicConfig(level=logging.INFO)
    with Library(Path(root)) as lib:
        drain(lib, policy, recipe)


class BuildRunner:
    """Runs pending jobs one at a time in a spawned worker process.

    `poll()` never blocks, so the agent's runner loop calls it between exposures; the CLI
    calls `sweep(..., wait=True)`. `new_masters()` says which masters were registered since it
    was last asked, for the caller to queue for upload.
    """

    def __init__(self, lib: Library, policy: LibraryPolicy, recipe: str = DEFAULT_RECIPE) -> None:
        self.lib = lib
        self.policy = policy
        self.recipe = recipe
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._last_sweep = 0.0
        self._last_master = self._newest_master()
        self._crashes = 0  # workers in a row that exited with an error

    @property
    def busy(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def poll(self) -> bool:
        """Reap a finished worker, and start one if jobs are pending; True while one runs."""
        if self._proc is not None:
            if self._proc.is_alive():
                return True
            self._proc.join()
            code = self._proc.exitcode
            self._proc = None
            self._crashes = self._crashes + 1 if code else 0
            if code:
                recover_jobs(self.lib)  # a job it was running goes back to pending, or fails after repeats
        if self._crashes >= MAX_ATTEMPTS:
            self._fail_next(f"the build worker exited with code {code} {self._crashes} times in a row; see the log")
            self._crashes = 0
        if next_pending(self.lib) is None:
            return False
        self._proc = self._ctx.Process(
            target=worker_main, args=(str(self.lib.root), self.policy, self.recipe), name="obsagent-build"
        )
        self._proc.start()
        return True

    def new_masters(self) -> list[int]:
        """Ids of the masters registered since the last call (the first call: since this runner
        was made), oldest first. Read from the database, as the worker is another process;
        masters another process registered (`obsagent library sweep`) are included."""
        rows = self.lib.conn.execute(
            "SELECT id FROM masters WHERE id > ? ORDER BY id", (self._last_master,)
        ).fetchall()
        ids = [int(r[0]) for r in rows]
        if ids:
            self._last_master = ids[-1]
        return ids

    def _newest_master(self) -> int:
        # Masters are never deleted, so ids grow in the order they were committed.
        return int(self.lib.conn.execute("SELECT COALESCE(MAX(id), 0) FROM masters").fetchone()[0])

    def maybe_sweep(self, now: float | None = None) -> SweepReport | None:
        """The periodic sweep of a running agent (every SWEEP_INTERVAL_S), without waiting."""
        from agent.library.sweep import sweep  # the sweep drives a runner: imported when used

        now = time.monotonic() if now is None else now
        if now - self._last_sweep < SWEEP_INTERVAL_S:
            return None
        self._last_sweep = now
        return sweep(self.lib, self.policy, runner=self, wait=False)

    def _fail_next(self, reason: str) -> None:
        """A job no worker can run is failed with the reason rather than retried for ever."""
        job = next_pending(self.lib)
        if job is None:
            return
        log.error("build job %d failed: %s", job, reason)
        with self.lib.transaction() as c:
            c.execute(
                "UPDATE jobs SET state = 'failed', reason = ?, finished_at = ? WHERE id = ? AND state = 'pending'",
                (reason, time.time(), job),
            )

    def wait(self, stop: threading.Event | None = None) -> bool:
        """Block until no job is pending or running (the CLI; the agent polls instead).

        Returns False, leaving the worker running, as soon as `stop` is set: a stop request is
        never kept waiting for a build."""
        while self.poll():
            if stop is not None and stop.is_set():
                return False
            if self._proc is not None:
                self._proc.join(0.2)
        return True

    def stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(10)
