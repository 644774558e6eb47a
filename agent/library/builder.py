"""Master building, gathered under the name callers have always imported it by.

The work lives in one module per step: `build_plan` (which groups are ready, the job rows),
`build_job` (running one job and registering its master), `build_worker` (the worker process
and `BuildRunner`), `recovery` (after a crash) and `sweep`; `recipes` is the stacking code a
job calls. New code may import from those modules directly.
"""

from __future__ import annotations

from agent.library.build_job import master_path, masters_of_jobs, provenance_header, register_master, run_job
from agent.library.build_plan import (
    BuildInputs,
    Waiting,
    flat_inputs,
    group_signature,
    next_pending,
    plan,
    schedule,
)
from agent.library.build_worker import SWEEP_INTERVAL_S, BuildRunner, drain
from agent.library.recipes import (
    DEFAULT_RECIPE,
    MasterLike,
    RecipeUnavailable,
    recipe_missing,
    stacking_recipe,
)
from agent.library.recovery import (
    MAX_ATTEMPTS,
    clean_partial_files,
    process_alive,
    process_start_token,
    recover_jobs,
    retry_failed,
)
from agent.library.sweep import SweepReport, sweep

__all__ = [
    "DEFAULT_RECIPE",
    "MAX_ATTEMPTS",
    "SWEEP_INTERVAL_S",
    "BuildInputs",
    "BuildRunner",
    "MasterLike",
    "RecipeUnavailable",
    "SweepReport",
    "Waiting",
    "clean_partial_files",
    "drain",
    "flat_inputs",
    "group_signature",
    "master_path",
    "masters_of_jobs",
    "next_pending",
    "plan",
    "process_alive",
    "process_start_token",
    "provenance_header",
    "recipe_missing",
    "recover_jobs",
    "register_master",
    "retry_failed",
    "run_job",
    "schedule",
    "stacking_recipe",
    "sweep",
]
