"""The sweep: catch up after a restart, then build what is ready.

It ingests captures whose row a crash lost, re-queues jobs whose worker died, removes partial
files, schedules ready groups in build order and (with `wait`) runs them to the end. Its report
names the masters it registered, so the caller can queue them for upload.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.library.build_job import masters_of_jobs
from agent.library.build_plan import Waiting, plan, schedule
from agent.library.build_worker import BuildRunner
from agent.library.keys import LibraryPolicy
from agent.library.recovery import clean_partial_files, recover_jobs
from agent.library.store import Library


@dataclass
class SweepReport:
    orphans_ingested: int = 0
    jobs_recovered: int = 0
    jobs_scheduled: list[int] = field(default_factory=list)
    jobs_done: list[int] = field(default_factory=list)
    jobs_failed: list[tuple[int, str]] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    masters_built: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "orphans_ingested": self.orphans_ingested,
            "jobs_recovered": self.jobs_recovered,
            "jobs_scheduled": self.jobs_scheduled,
            "jobs_done": self.jobs_done,
            "jobs_failed": [{"job": j, "reason": r} for j, r in self.jobs_failed],
            "waiting": [{"key": w.key.as_dict(), "count": w.count, "reason": w.reason} for w in self.waiting],
            "masters_built": self.masters_built,
        }


def sweep(
    lib: Library,
    policy: LibraryPolicy,
    *,
    runner: BuildRunner | None = None,
    wait: bool = True,
    build: bool = True,
) -> SweepReport:
    """Catch up after a restart: ingest orphaned captures, re-queue jobs whose worker died,
    schedule ready groups in build order and (with `wait`) run them to completion; flats are
    re-planned after their dark flats and biases exist. Without `wait` the builds go on in the
    runner's worker and `runner.new_masters()` tells of their masters later."""
    report = SweepReport()
    for path in lib.orphans():
        if lib.ingest_file(path).status in ("added", "updated", "quarantined"):
            report.orphans_ingested += 1
    report.jobs_recovered = recover_jobs(lib)
    clean_partial_files(lib)
    if not build:
        report.waiting = plan(lib, policy)[1]
        return report
    runner = runner or BuildRunner(lib, policy)
    before = {int(r[0]) for r in lib.conn.execute("SELECT id FROM jobs WHERE state IN ('done', 'failed')")}
    first = {int(r[0]) for r in lib.conn.execute("SELECT id FROM jobs")}
    new, report.waiting = schedule(lib, policy)
    if wait:
        runner.wait()
        report.waiting = plan(lib, policy)[1]
    else:
        runner.poll()
    report.jobs_scheduled = new + [
        int(r[0]) for r in lib.conn.execute("SELECT id FROM jobs") if int(r[0]) not in first and int(r[0]) not in new
    ]
    for r in lib.conn.execute("SELECT id, state, reason FROM jobs WHERE state IN ('done', 'failed')"):
        if int(r["id"]) in before:
            continue
        if r["state"] == "done":
            report.jobs_done.append(int(r["id"]))
        else:
            report.jobs_failed.append((int(r["id"]), str(r["reason"])))
    report.masters_built = masters_of_jobs(lib, report.jobs_done)
    return report
