"""Running one build job: stack its frames with the recipe, write the master, register it.

The master file is written atomically first; then one transaction registers the master, links
its sources, supersedes the previous master of the same key, marks lights calibrated with that
one stale and marks the job done. A worker killed at any point leaves the job `running` with a
dead process, which the next sweep runs again; no row ever names a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import statistics
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from astropy.io import fits

from agent import __version__
from agent.library.build_plan import BuildInputs
from agent.library.database import key_clause
from agent.library.frame_checks import BIAS_MAX_FRACTION, DARK_MAX_FRACTION
from agent.library.ingest import file_checksum
from agent.library.keys import ConfigKey, FrameType, LibraryPolicy
from agent.library.recipes import DEFAULT_RECIPE, MasterLike, load_recipe
from agent.library.recovery import process_start_token
from agent.library.store import Library

log = logging.getLogger(__name__)

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


def master_path(lib: Library, key: ConfigKey, job_id: int) -> Path:
    """A readable, unique file name: the key's fields and the job that built it."""
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
    """The header a recipe starts from, so Siril and PixInsight read what the master is."""
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
        h["CCD-TEMP"] = (key.temperature, "[degC] median sensor temperature of the source frames")
    h["NCOMBINE"] = (n, "source frames")
    h["OALIBJOB"] = (job_id, "obsagent library build job")
    h["SWCREATE"] = f"obsagent {__version__}"
    return h


REFUSED_CHECKS = frozenset({"light-leak", "flat-level", "flat-saturated"})
"""Quality findings that make a master unusable (the others are recorded and warned about)."""


class MasterRefused(Exception):
    """The master failed a check that makes it unusable; its sources are rejected."""


def refusal(kind: FrameType, master: MasterLike) -> str | None:
    """Why a built master must not be registered, or None."""
    issues = getattr(master, "issues", None) or []
    fatal = [str(i) for i in issues if getattr(i, "check", "") in REFUSED_CHECKS]
    if fatal:
        return "; ".join(fatal)
    data = getattr(master, "data", None)
    if kind in (FrameType.DARK, FrameType.DARKFLAT, FrameType.BIAS) and data is not None:
        import numpy as np

        sample = np.asarray(data)[::8, ::8]
        level = float(np.nanmedian(sample)) if sample.size else 0.0
        limit = (BIAS_MAX_FRACTION if kind is FrameType.BIAS else DARK_MAX_FRACTION) * 65535.0
        if level > limit:
            return f"{kind.value} median {level:.0f} ADU is above {limit:.0f}: its frames saw light or saturated"
    return None


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
    except MasterRefused as exc:  # its sources saw light or saturated: they never go into a master
        reason = f"master refused: {exc}"
        log.warning("build job %d: %s", job_id, reason)
        frame_ids = json.loads(row["frame_ids"])
        marks = ",".join("?" * len(frame_ids))
        with lib.transaction() as c:
            c.execute(
                f"UPDATE frames SET state = 'rejected', reason = ? WHERE id IN ({marks}) AND state = 'accumulating'",
                [reason, *frame_ids],
            )
            c.execute(
                "UPDATE jobs SET state = 'failed', reason = ?, finished_at = ? WHERE id = ?",
                (reason, time.time(), job_id),
            )
        return None
    except Exception as exc:  # a failed build is recorded on its job, never lost in a worker
        reason = f"{type(exc).__name__}: {exc}"
        log.error("build job %d failed: %s\n%s", job_id, reason, traceback.format_exc())
        with lib.transaction() as c:
            c.execute(
                "UPDATE jobs SET state = 'failed', reason = ?, finished_at = ? WHERE id = ?",
                (reason, time.time(), job_id),
            )
        return None


def _build(lib: Library, job: sqlite3.Row, recipe: str) -> int:
    job_id = int(job["id"])
    inputs: BuildInputs = json.loads(job["inputs"])
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
    # recorded relative to the data folder: the stacker gets where the files are now
    recorded = {"darkflat": inputs.get("darkflat"), "bias": inputs.get("bias")}
    calibration = {name: str(lib.on_disk(str(value))) if value else None for name, value in recorded.items()}
    for name, master_file in calibration.items():
        if master_file and not Path(master_file).is_file():
            raise FileNotFoundError(f"master {name} {master_file} is missing")
    paths = [str(lib.on_disk(str(f["path"]))) for f in frames]
    target = master_path(lib, key, job_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    build = load_recipe(recipe)
    header = provenance_header(key, job_id, len(paths))
    exposures = [float(f["exposure"]) for f in frames if f["exposure"] is not None]
    if exposures and key.exposure_key is not None:
        # the key rounds the exposure; the master records what the sources really had
        header["EXPTIME"] = (statistics.median(exposures), "[s] median exposure of the source frames")
    temps_c = [float(f["temperature"]) for f in frames if f["temperature"] is not None]
    if temps_c:
        header["TEMPMIN"] = (min(temps_c), "[degC] coldest source frame (sensor)")
        header["TEMPMAX"] = (max(temps_c), "[degC] warmest source frame (sensor)")
    stacking = [(str(name), value) for name, value in inputs.get("stacking", [])]
    extra = {"stacking": stacking} if stacking else {}  # a recipe without settings needs none
    master = build(
        key.frame_type,
        paths,
        darkflat=calibration["darkflat"],
        bias=calibration["bias"],
        header=header,
        **extra,
    )
    refused = refusal(key.frame_type, master)
    if refused is not None:
        raise MasterRefused(refused)
    master.write(target)
    if not target.is_file():
        raise RuntimeError(f"the recipe did not write {target}")
    return register_master(lib, job_id, key, target, frames, master, inputs, float(inputs.get("tolerance", 1.0)))


def register_master(
    lib: Library,
    job_id: int,
    key: ConfigKey,
    target: Path,
    frames: list[sqlite3.Row],
    master: MasterLike,
    inputs: BuildInputs,
    tolerance: float,
) -> int:
    """One transaction: master row, source links, supersession, stale lights, job done."""
    ids = [int(f["id"]) for f in frames]
    exposures = [float(f["exposure"]) for f in frames if f["exposure"] is not None]
    newest = max(float(f["captured_at"] or 0) for f in frames)
    header = getattr(master, "header", fits.Header())
    method = str(header.get("REJECT", header.get("COMBMETH", header.get("METHOD", "auto"))))
    stats: dict[str, object] = {k: header[k] for k in _STAT_KEYS if k in header}
    stats["checksum"] = file_checksum(target)
    if inputs.get("darkflat_id"):
        stats["darkflat_id"] = inputs["darkflat_id"]
    if inputs.get("bias_id"):
        stats["bias_id"] = inputs["bias_id"]
    if inputs.get("forced"):
        stats["forced"] = True
    temps = [float(f["temperature"]) for f in frames if f["temperature"] is not None]
    if temps:
        stats["temperature_min"] = min(temps)
        stats["temperature_max"] = max(temps)
    policy_age = inputs.get("max_age_days")
    max_age = float(policy_age) if policy_age else LibraryPolicy().max_age_for(key.frame_type)
    sources_hash = hashlib.sha256("\n".join(sorted(str(f["path"]) for f in frames)).encode()).hexdigest()
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
                lib.stored(target),
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


def masters_of_jobs(lib: Library, job_ids: Sequence[int]) -> list[int]:
    """The masters these jobs registered, in job order; jobs that failed or are not done yet
    have none. Lets a caller act on new masters (queue them for upload) after `drain`."""
    if not job_ids:
        return []
    marks = ",".join("?" * len(job_ids))
    by_job = {
        int(r[0]): int(r[1])
        for r in lib.conn.execute(
            f"SELECT id, master_id FROM jobs WHERE id IN ({marks}) AND state = 'done' AND master_id IS NOT NULL",
            list(job_ids),
        )
    }
    return [by_job[j] for j in job_ids if j in by_job]
