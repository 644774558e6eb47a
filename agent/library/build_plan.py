"""Planning build jobs: which groups are ready to become masters, with what, and which must wait.

A job row is written before any work starts and names the frames it will stack and the inputs
(tolerance, age limit, the master dark flat or bias of a flat), so the worker needs nothing else.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import TypedDict

from agent.library.grouping import Group
from agent.library.keys import BUILD_ORDER, ConfigKey, FrameType, LibraryPolicy, round_exposure
from agent.library.match import choose_master
from agent.library.recipes import recipe_missing
from agent.library.store import Library


class FlatCalibration(TypedDict, total=False):
    """The master a flat group is calibrated with: a dark flat (preferred) or a bias."""

    darkflat: str
    darkflat_id: int
    bias: str
    bias_id: int


class BuildInputs(FlatCalibration, total=False):
    """What a job records besides its frames (the `inputs` JSON of its row)."""

    tolerance: float
    max_age_days: float
    key: dict[str, object]
    forced: bool  # built below the policy's count because a person asked
    stacking: list[list[object]]  # the sequence file's `stacking:` settings, as (name, value) pairs


@dataclass(frozen=True)
class Waiting:
    """A group that has enough frames but cannot be built yet, and why."""

    key: ConfigKey
    count: int
    reason: str


def group_signature(group: Group) -> str:
    """A group's identity on its job rows: its exact key and set-point."""
    return json.dumps({"key": group.key.exact(), "temperature": group.key.temperature})


def plan(
    lib: Library,
    policy: LibraryPolicy,
    kinds: tuple[FrameType, ...] = BUILD_ORDER,
    groups: list[Group] | None = None,
) -> tuple[list[tuple[Group, BuildInputs]], list[Waiting]]:
    """Groups ready to build (with their inputs) and groups that must wait."""
    busy = {
        str(r[0]) for r in lib.conn.execute("SELECT group_key FROM jobs WHERE state IN ('pending', 'running')")
    }
    failed = {
        str(r["group_key"]): r
        for r in lib.conn.execute(
            "SELECT id, group_key, frame_ids, reason FROM jobs WHERE state = 'failed' ORDER BY id"
        )
    }
    ready: list[tuple[Group, BuildInputs]] = []
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
            inputs: BuildInputs = {
                "tolerance": policy.temperature_tolerance,
                "max_age_days": policy.max_age_for(kind),
            }
            if policy.stacking:
                inputs["stacking"] = [list(pair) for pair in policy.stacking]
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
) -> FlatCalibration | str:
    """The master dark flat (preferred) or bias a flat group is calibrated with, or why it waits.

    The bias stands in only where no dark flat of the flats' one exposure is built or accumulating,
    and only when the policy allows it (`bias_for_flats`); flats of several exposures (sky flats)
    can have no dark flat, so they need that permission."""
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
    keys = {round_exposure(float(e)) for e in exposures if e is not None}
    if len(keys) == 1:
        exposure = next(iter(keys))
        darkflat_key = group.key.for_type(FrameType.DARKFLAT, exposure)
        choice = choose_master(lib, darkflat_key, strict)
        if choice.master is not None:
            return {"darkflat": lib.stored(choice.master.path), "darkflat_id": choice.master.id}
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
    if not policy.bias_for_flats:
        if len(keys) == 1:
            return (
                f"waiting for a master dark flat at {next(iter(keys)):g} s "
                "(allow_looser.bias_for_darkflats is false: the master bias is not used for flats)"
            )
        return (
            f"flats of {len(keys)} exposures (sky flats) match no dark flat and allow_looser.bias_for_darkflats "
            "is false; set it to true to calibrate them with the master bias"
        )
    bias = choose_master(lib, group.key.for_type(FrameType.BIAS), strict)
    if bias.master is not None:
        return {"bias": lib.stored(bias.master.path), "bias_id": bias.master.id}
    if len(keys) == 1:
        return f"waiting for a master dark flat at {next(iter(keys)):g} s or a master bias"
    return "flats of several exposures: waiting for a master bias"


def schedule(
    lib: Library, policy: LibraryPolicy, kinds: tuple[FrameType, ...] = BUILD_ORDER
) -> tuple[list[int], list[Waiting]]:
    """Write a pending job for every ready group; returns the new job ids and the waiting groups."""
    ready, waiting = plan(lib, policy, kinds)
    return [_insert_job(lib, group, inputs) for group, inputs in ready], waiting


def schedule_group(lib: Library, policy: LibraryPolicy, key: ConfigKey) -> int | str:
    """A job for the one group with this key, even below the policy's count (a person asked for
    it: the master is marked forced). Returns the job id, or why it cannot be built."""
    groups = [g for g in lib.groups(policy, key.frame_type) if g.key == key]
    if not groups:
        return f"no frames are waiting for a {key.frame_type.value} master of {key.describe()}"
    forced = replace(policy, min_frames={**policy.min_frames, key.frame_type: 1})
    ready, waiting = plan(lib, forced, (key.frame_type,), groups=groups)
    if not ready:
        return waiting[0].reason if waiting else "a build of this group is already queued"
    group, inputs = ready[0]
    inputs["forced"] = group.count < policy.min_for(key.frame_type)
    return _insert_job(lib, group, inputs)


def _insert_job(lib: Library, group: Group, inputs: BuildInputs) -> int:
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
        return int(cur.lastrowid or 0)


def next_pending(lib: Library) -> int | None:
    """The pending job to run next, in build order (a flat needs its dark flat or bias first)."""
    row = lib.conn.execute(
        "SELECT id FROM jobs WHERE state = 'pending' ORDER BY "
        "CASE frame_type WHEN 'bias' THEN 0 WHEN 'dark' THEN 1 WHEN 'darkflat' THEN 2 ELSE 3 END, id LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])
