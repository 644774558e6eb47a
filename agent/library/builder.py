"""Master creation jobs: decide which groups are ready, stack them in a worker process.

A job row is written before any work starts and names the frames it will stack. The worker
writes the master file atomically, then in one transaction registers the master, links its
sources, supersedes the previous master of the same key and marks the job done. If the
worker dies (kill -9, power cut), the job is found `running` with a dead process by the
next sweep and run again; no row ever names a half-written file.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import multiprocessing
import os
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from astropy.io import fits

from agent import __version__
from agent.library.keys import BUILD_ORDER, ConfigKey, FrameType, LibraryPolicy
from agent.library.match import choose_master
from agent.library.store import Group, Library, key_clause

log = logging.getLogger(__name__)

DEFAULT_RECIPE = "agent.library.builder:stacking_recipe"
SWEEP_INTERVAL_S = 300.0
MAX_ATTEMPTS = 3

_MASTER_NAMES = {
    FrameType.BIAS: "Master Bias",
    FrameType.DARK: "Master Dark",
    FrameType.DARKFLAT: "Master Dark Flat",
    FrameType.FLAT: "Master Flat",
}


# Provenance keywords of a master kept in the library row (the FITS header has the rest).
_STAT_KEYS = (
    "NCOMBINE",
    "REJECT",
    "REJ_LOW",
    "REJ_HIGH",
    "COMBINE",
    "NORMALIZ",
    "REJFRLO",
    "REJFRHI",
    "SRCHASH",
)


class RecipeUnavailable(Exception):
    """The stacking code a build needs is not installed yet."""


class MasterLike(Protocol):
    header: fits.Header

    def write(self, path: str | os.PathLike[str]) -> Any: ...


@dataclass(frozen=True)
class Waiting:
    """A group that has enough frames but cannot be built yet, and why."""

    key: ConfigKey
    count: int
    reason: str


@dataclass
class SweepReport:
    orphans_ingested: int = 0
    jobs_recovered: int = 0
    jobs_scheduled: list[int] = field(default_factory=list)
    jobs_done: list[int] = field(default_factory=list)
    jobs_failed: list[tuple[int, str]] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "orphans_ingested": self.orphans_ingested,
            "jobs_recovered": self.jobs_recovered,
            "jobs_scheduled": self.jobs_scheduled,
            "jobs_done": self.jobs_done,
            "jobs_failed": [{"job": j, "reason": r} for j, r in self.jobs_failed],
            "waiting": [{"key": w.key.as_dict(), "count": w.count, "reason": w.reason} for w in self.waiting],
        }


# recipes ------------------------------------------------------------------------------------


def recipe_missing(kind: FrameType) -> str | None:
    """Why the stacking code for `kind` is not available, or None when it is."""
    calibrate = _probe("agent.stacking.calibrate", "build_master")
    if calibrate is None:
        return None
    if kind is FrameType.FLAT:
        return f"flat recipe not available ({calibrate})"
    combine = _probe("agent.stacking.combine", "combine")
    if combine is None:
        return None
    return f"stacking not available ({combine})"


def _probe(module: str, attr: str) -> str | None:
    """None when `module.attr` can be used, else the reason it cannot. A module already
    imported is checked for the attribute; one not yet imported only for existence, so that
    asking (`needs`) does not pay for importing the numeric stack; a missing attribute then
    fails the build job with the reason."""
    try:
        if module in sys.modules:
            return None if hasattr(sys.modules[module], attr) else f"{module}.{attr} missing"
        if importlib.util.find_spec(module) is None:
            return f"{module} missing"
    except Exception as exc:  # a broken package must read as "not available", with the cause
        return f"{module} cannot be found: {type(exc).__name__}: {exc}"
    return None


def stacking_recipe(
    kind: FrameType, paths: list[str], *, darkflat: str | None, bias: str | None, header: fits.Header
) -> MasterLike:
    """Build a master with the stacking package: the calibration recipe when present, else a
    plain combine for frames that need no calibration first."""
    reason = recipe_missing(kind)
    if reason is not None:
        raise RecipeUnavailable(reason)
    if _probe("agent.stacking.calibrate", "build_master") is None:
        from agent.stacking import calibrate

        result: MasterLike = calibrate.build_master(
            kind.value, paths, darkflat=darkflat, bias=bias, header=header
        )
        return result
    from agent.stacking import combine as combine_module

    result = combine_module.combine(paths, normalize="none", frame_type=kind.value, header=header)
    return result


def _load_recipe(spec: str) -> Callable[..., MasterLike]:
    module, _, name = spec.partition(":")
    func: Callable[..., MasterLike] = getattr(importlib.import_module(module), name)
    return func


# planning -----------------------------------------------------------------------------------


def group_signature(group: Group) -> str:
    return json.dumps({"key": group.key.exact(), "temperature": group.key.temperature})


def plan(
    lib: Library,
    policy: LibraryPolicy,
    kinds: tuple[FrameType, ...] = BUILD_ORDER,
    groups: list[Group] | None = None,
) -> tuple[list[tuple[Group, dict[str, object]]], list[Waiting]]:
    """Groups ready to build (with their inputs) and groups that must wait."""
    busy = {
        str(r[0])
        for r in lib.conn.execute("SELECT group_key FROM jobs WHERE state IN ('pending', 'running')")
    }
    failed = {
        str(r["group_key"]): r
        for r in lib.conn.execute(
            "SELECT id, group_key, frame_ids, reason FROM jobs WHERE state = 'failed' ORDER BY id"
        )
    }
    ready: list[tuple[Group, dict[str, object]]] = []
    waiting: list[Waiting] = []
    all_groups = lib.groups(policy) if groups is None else groups
    darkflat_groups = [g for g in all_groups if g.key.frame_type is FrameType.DARKFLAT]
    for kind in kinds:
        for group in (g for g in all_groups if g.key.frame_type is kind):
            if group.count < policy.min_for(kind) or group_signature(group) in busy:
                continue
            missing = recipe_missing(kind)
            if missing is not None:
                waiting.append(Waiting(group.key, group.count, missing))
                continue
            last = failed.get(group_signature(group))
            if last is not None and json.loads(last["frame_ids"]) == lib.group_frame_ids(group):
                waiting.append(
                    Waiting(
                        group.key,
                        group.count,
                        f"build job #{last['id']} failed ({last['reason']}); "
                        "fix the cause, then `obsagent library sweep --retry-failed`",
                    )
                )
                continue
            inputs: dict[str, object] = {
                "tolerance": policy.temperature_tolerance,
                "max_age_days": policy.max_age_for(kind),
            }
            if kind is FrameType.FLAT:
                found = flat_inputs(lib, group, policy, darkflat_groups)
                if isinstance(found, str):
                    waiting.append(Waiting(group.key, group.count, found))
                    continue
                inputs.update(found)
            ready.append((group, inputs))
    return ready, waiting


def flat_inputs(
    lib: Library, group: Group, policy: LibraryPolicy, darkflat_groups: list[Group] | None = None
) -> dict[str, object] | str:
    """The master dark flat (preferred) or bias a flat group is calibrated with, or why it waits."""
    ids = lib.group_frame_ids(group)
    marks = ",".join("?" * len(ids))
    exposures = {
        r[0] for r in lib.conn.execute(f"SELECT DISTINCT exposure FROM frames WHERE id IN ({marks})", ids)
    }
    strict = LibraryPolicy(
        min_frames=policy.min_frames,
        max_age_days=policy.max_age_days,
        temperature_tolerance=policy.temperature_tolerance,
    )
    from agent.library.keys import round_exposure

    keys = {round_exposure(float(e)) for e in exposures if e is not None}
    if len(keys) == 1:
        exposure = next(iter(keys))
        darkflat_key = group.key.for_type(FrameType.DARKFLAT, exposure)
        choice = choose_master(lib, darkflat_key, strict)
        if choice.master is not None:
            return {"darkflat": choice.master.path, "darkflat_id": choice.master.id}
        pending = [
            g
            for g in (lib.groups(policy, FrameType.DARKFLAT) if darkflat_groups is None else darkflat_groups)
            if g.key.exact() == darkflat_key.exact()
            and (
                g.key.temperature is None
                or group.key.temperature is None
                or abs(g.key.temperature - group.key.temperature) <= policy.temperature_tolerance
            )
        ]
        if pending:
            have = max(g.count for g in pending)
            return (
                f"waiting for its master dark flat at {exposure:g} s "
                f"({have}/{policy.min_for(FrameType.DARKFLAT)} dark flats)"
            )
    bias = choose_master(lib, group.key.for_type(FrameType.BIAS), strict)
    if bias.master is not None:
        return {"bias": bias.master.path, "bias_id": bias.master.id}
    if len(keys) == 1:
        return f"waiting for a master dark flat at {next(iter(keys)):g} s or a master bias"
    return "flats of several exposures: waiting for a master bias"


def schedule(
    lib: Library, policy: LibraryPolicy, kinds: tuple[FrameType, ...] = BUILD_ORDER
) -> tuple[list[int], list[Waiting]]:
    """Write a pending job for every ready group; returns the new job ids and the waiting groups."""
    ready, waiting = plan(lib, policy, kinds)
    job_ids = []
    for group, inputs in ready:
        frame_ids = lib.group_frame_ids(group)
        with lib.transaction() as c:
            cur = c.execute(
                "INSERT INTO jobs (kind, frame_type, group_key, frame_ids, inputs, state, created_at) "
                "VALUES ('build', ?, ?, ?, ?, 'pending', ?)",
                (
                    group.key.frame_type.value,
                    group_signature(group),
                    json.dumps(frame_ids),
                    json.dumps({**inputs, "key": group.key.as_dict()}),
                    time.time(),
                ),
            )
            job_ids.append(int(cur.lastrowid or 0))
    return job_ids, waiting


# process bookkeeping ------------------------------------------------------------------------


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
    for row in lib.conn.execute(
        "SELECT id, pid, pid_start, attempts FROM jobs WHERE state = 'running'"
    ).fetchall():
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


# the worker ---------------------------------------------------------------------------------


def master_path(lib: Library, key: ConfigKey, job_id: int) -> Path:
    bits = [
        key.frame_type.value,
        key.camera,
        f"bin{key.binning}",
        f"g{key.gain:g}" if key.gain is not None else "g-",
        f"o{key.offset:g}" if key.offset is not None else "o-",
    ]
    if key.readout_mode:
        bits.append(key.readout_mode)
    if key.filter:
        bits.append(key.filter)
    if key.exposure_key is not None:
        bits.append(f"{key.exposure_key:g}s")
    if key.temperature is not None:
        bits.append(f"{key.temperature:+.0f}C")
    bits.append(f"job{job_id}")
    name = re.sub(r"[^A-Za-z0-9+.\-]+", "_", "_".join(bits))
    return lib.masters_dir / key.frame_type.value / f"{name}.fits"


def provenance_header(key: ConfigKey, job_id: int, n: int) -> fits.Header:
    h = fits.Header()
    h["IMAGETYP"] = (_MASTER_NAMES[key.frame_type], "master frame type")
    h["INSTRUME"] = key.camera
    h["SENSKIND"] = (key.sensor_kind.value, "sensor kind recorded by the library")
    h["XBINNING"] = int(key.binning.split("x")[0])
    h["YBINNING"] = int(key.binning.split("x")[1])
    if key.gain is not None:
        h["GAIN"] = key.gain
    if key.offset is not None:
        h["OFFSET"] = key.offset
    if key.readout_mode:
        h["READOUTM"] = key.readout_mode
    if key.filter:
        h["FILTER"] = key.filter
    if key.exposure_key is not None:
        h["EXPTIME"] = (key.exposure_key, "[s] exposure of the source frames")
    if key.temperature is not None:
        h["SET-TEMP"] = (key.temperature, "[degC] set-point of the source frames")
    h["NCOMBINE"] = (n, "source frames")
    h["OALIBJOB"] = (job_id, "obsagent library build job")
    h["SWCREATE"] = f"obsagent {__version__}"
    return h


def run_job(lib: Library, job_id: int, recipe: str = DEFAULT_RECIPE) -> int | None:
    """Build one job's master in this process; returns the master id, or None if the job was
    not pending (another worker took it) or failed (reason recorded on the job)."""
    token = process_start_token(os.getpid())
    with lib.transaction() as c:
        row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or row["state"] != "pending":
            return None
        c.execute(
            "UPDATE jobs SET state = 'running', pid = ?, pid_start = ?, attempts = attempts + 1, started_at = ? "
            "WHERE id = ?",
            (os.getpid(), token, time.time(), job_id),
        )
    try:
        return _build(lib, row, recipe)
    except Exception as exc:  # a failed build is recorded on its job, never lost in a worker
        reason = f"{type(exc).__name__}: {exc}"
        log.error("build job %d failed: %s\n%s", job_id, reason, traceback.format_exc())
        with lib.transaction() as c:
            c.execute(
                "UPDATE jobs SET state = 'failed', reason = ?, finished_at = ? WHERE id = ?",
                (reason, time.time(), job_id),
            )
        return None


def _build(lib: Library, job: Any, recipe: str) -> int:
    job_id = int(job["id"])
    inputs = json.loads(job["inputs"])
    frame_ids: list[int] = json.loads(job["frame_ids"])
    marks = ",".join("?" * len(frame_ids))
    frames = lib.conn.execute(
        f"SELECT id, path, exposure, temperature, captured_at FROM frames WHERE id IN ({marks}) "
        "AND state = 'accumulating' ORDER BY captured_at, id",
        frame_ids,
    ).fetchall()
    if not frames:
        raise RuntimeError("none of the job's frames is still accumulating")
    temps = [float(f["temperature"]) for f in frames if f["temperature"] is not None]
    key = ConfigKey.from_row(inputs["key"], temperature=round(statistics.median(temps), 2) if temps else None)
    for name in ("darkflat", "bias"):
        if inputs.get(name) and not Path(str(inputs[name])).is_file():
            raise FileNotFoundError(f"master {name} {inputs[name]} is missing")
    paths = [str(f["path"]) for f in frames]
    target = master_path(lib, key, job_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    build = _load_recipe(recipe)
    header = provenance_header(key, job_id, len(paths))
    exposures = [float(f["exposure"]) for f in frames if f["exposure"] is not None]
    if exposures and key.exposure_key is not None:
        # the key rounds the exposure; the master records what the sources really had
        header["EXPTIME"] = (statistics.median(exposures), "[s] median exposure of the source frames")
    master = build(
        key.frame_type,
        paths,
        darkflat=inputs.get("darkflat"),
        bias=inputs.get("bias"),
        header=header,
    )
    master.write(target)
    if not target.is_file():
        raise RuntimeError(f"the recipe did not write {target}")
    master_id = register_master(
        lib, job_id, key, target, frames, master, inputs, float(inputs.get("tolerance", 1.0))
    )
    _queue_upload(lib, master_id, target)
    return master_id


def _queue_upload(lib: Library, master_id: int, target: Path) -> None:
    """Queue the new master for upload at once (the sync sweep would find it later anyway)."""
    try:
        from agent.sync.manifest import library_manifest
        from agent.sync.outbox import enqueue_master

        enqueue_master(lib.conn, target, library_manifest(lib.conn, master_id))
    except Exception as exc:  # the master is registered; the sync sweep queues it if this fails
        log.warning("master #%d not queued for upload yet (%s); the sync sweep will queue it", master_id, exc)


def register_master(
    lib: Library,
    job_id: int,
    key: ConfigKey,
    target: Path,
    frames: list[Any],
    master: MasterLike,
    inputs: dict[str, Any],
    tolerance: float,
) -> int:
    """One transaction: master row, source links, supersession, stale lights, job done."""
    from agent.library.store import file_checksum

    ids = [int(f["id"]) for f in frames]
    exposures = [float(f["exposure"]) for f in frames if f["exposure"] is not None]
    newest = max(float(f["captured_at"] or 0) for f in frames)
    header = getattr(master, "header", fits.Header())
    method = str(header.get("REJECT", header.get("COMBMETH", header.get("METHOD", "auto"))))
    stats: dict[str, object] = {k: header[k] for k in _STAT_KEYS if k in header}
    stats["checksum"] = file_checksum(target)
    for name in ("darkflat_id", "bias_id"):
        if inputs.get(name):
            stats[name] = inputs[name]
    policy_ages = inputs.get("max_age_days")
    max_age = float(policy_ages) if policy_ages else _default_age(key.frame_type)
    sources_hash = _sources_hash([str(f["path"]) for f in frames])
    marks = ",".join("?" * len(ids))
    now = time.time()
    with lib.transaction() as c:
        cur = c.execute(
            "INSERT INTO masters (frame_type, camera, sensor_kind, width, height, binning, gain, offset, "
            "readout_mode, bit_depth, filter, exposure_key, temperature, exposure, path, n_sources, method, "
            "stats, sources_hash, created_at, newest_source, expires_at, job_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *key.exact(),
                key.temperature,
                statistics.median(exposures) if exposures else None,
                str(target),
                len(ids),
                method,
                json.dumps(stats, default=str),
                sources_hash,
                now,
                newest,
                newest + max_age * 86400.0,
                job_id,
            ),
        )
        master_id = int(cur.lastrowid or 0)
        c.executemany(
            "INSERT INTO master_sources (master_id, frame_id) VALUES (?, ?)", [(master_id, i) for i in ids]
        )
        c.execute(
            f"UPDATE frames SET state = 'in_master', master_id = ? WHERE id IN ({marks}) AND state = 'accumulating'",
            [master_id, *ids],
        )
        where, args = key_clause(key.exact())
        old = [
            int(r["id"])
            for r in c.execute(
                f"SELECT id, temperature FROM masters WHERE {where} AND superseded_by IS NULL AND id != ?",
                (*args, master_id),
            )
            if key.temperature is None
            and r["temperature"] is None
            or (
                key.temperature is not None
                and r["temperature"] is not None
                and abs(float(r["temperature"]) - key.temperature) <= tolerance + 1e-9
            )
        ]
        if old:
            omarks = ",".join("?" * len(old))
            c.execute(f"UPDATE masters SET superseded_by = ? WHERE id IN ({omarks})", [master_id, *old])
            c.execute(
                "UPDATE lights SET status = 'stale', reason = 'a newer master replaced one it used', updated_at = ? "
                f"WHERE status = 'calibrated' AND EXISTS (SELECT 1 FROM json_each(lights.masters_used) "
                f"WHERE json_each.value IN ({omarks}))",
                [now, *old],
            )
        c.execute(
            "UPDATE jobs SET state = 'done', master_id = ?, finished_at = ?, reason = NULL WHERE id = ?",
            (master_id, now, job_id),
        )
    return master_id


def _default_age(kind: FrameType) -> float:
    return LibraryPolicy().max_age_for(kind)


def _sources_hash(paths: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(sorted(paths)).encode()).hexdigest()


def next_pending(lib: Library) -> int | None:
    row = lib.conn.execute(
        "SELECT id FROM jobs WHERE state = 'pending' ORDER BY "
        "CASE frame_type WHEN 'bias' THEN 0 WHEN 'dark' THEN 1 WHEN 'darkflat' THEN 2 ELSE 3 END, id LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])


def drain(lib: Library, policy: LibraryPolicy | None, recipe: str = DEFAULT_RECIPE) -> list[int]:
    """Run pending jobs in build order until none is left; with a policy, groups that became
    ready (flats whose dark flat was just built) are scheduled and run too."""
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


def _worker_main(root: str, policy: LibraryPolicy | None, recipe: str) -> None:
    logging.basicConfig(level=logging.INFO)
    with Library(Path(root)) as lib:
        drain(lib, policy, recipe)


# running builds -----------------------------------------------------------------------------


class BuildRunner:
    """Runs pending jobs one at a time in a spawned worker process.

    `poll()` never blocks, so the agent's runner loop calls it between exposures; the CLI
    calls `sweep(..., wait=True)`.
    """

    def __init__(self, lib: Library, policy: LibraryPolicy, recipe: str = DEFAULT_RECIPE) -> None:
        self.lib = lib
        self.policy = policy
        self.recipe = recipe
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._last_sweep = 0.0

    @property
    def busy(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def poll(self) -> bool:
        """Reap a finished worker, and start one if jobs are pending; True while one runs."""
        if self._proc is not None:
            if self._proc.is_alive():
                return True
            self._proc.join()
            self._proc = None
        if next_pending(self.lib) is None:
            return False
        self._proc = self._ctx.Process(
            target=_worker_main, args=(str(self.lib.root), self.policy, self.recipe), name="obsagent-build"
        )
        self._proc.start()
        return True

    def maybe_sweep(self, now: float | None = None) -> SweepReport | None:
        """The periodic sweep of a running agent (every SWEEP_INTERVAL_S), without waiting."""
        now = time.monotonic() if now is None else now
        if now - self._last_sweep < SWEEP_INTERVAL_S:
            return None
        self._last_sweep = now
        return sweep(self.lib, self.policy, runner=self, wait=False)

    def wait(self) -> None:
        """Block until no job is pending or running (the CLI; the agent polls instead)."""
        while self.poll():
            if self._proc is not None:
                self._proc.join()

    def stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(10)


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
    re-planned after their dark flats and biases exist."""
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
        int(r[0])
        for r in lib.conn.execute("SELECT id FROM jobs")
        if int(r[0]) not in first and int(r[0]) not in new
    ]
    for r in lib.conn.execute("SELECT id, state, reason FROM jobs WHERE state IN ('done', 'failed')"):
        if int(r["id"]) in before:
            continue
        if r["state"] == "done":
            report.jobs_done.append(int(r["id"]))
        else:
            report.jobs_failed.append((int(r["id"]), str(r["reason"])))
    return report
