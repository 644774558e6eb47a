"""Recipes: the stacking code a build job calls to turn frames into a master.

A recipe is named `module:function` so the build worker (a spawned process) can import it, and
tests can give a small one. The default uses `agent.stacking` and reports, without importing
the numeric stack, whether the code a kind of master needs is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from agent.library.keys import FrameType

if TYPE_CHECKING:
    from astropy.io import fits

DEFAULT_RECIPE = "agent.library.recipes:stacking_recipe"


class RecipeUnavailable(Exception):
    """The stacking code a build needs is not installed yet."""


class MasterLike(Protocol):
    """What a recipe returns: a master that carries its header and can write itself."""

    header: fits.Header

    def write(self, path: str | os.PathLike[str]) -> object: ...


class Recipe(Protocol):
    """The signature every recipe has: the kind, the source files, the master dark flat or
    bias a flat is calibrated with, and the provenance header to start from."""

    def __call__(
        self,
        kind: FrameType,
        paths: list[str],
        *,
        darkflat: str | None,
        bias: str | None,
        header: fits.Header,
        stacking: Iterable[tuple[str, Any]] = (),
    ) -> MasterLike: ...


# The sequence file's `stacking:` names, as `agent.stacking.combine.combine` spells them.
_COMBINE_NAMES = {
    "rejection": "method",
    "low": "low",
    "high": "high",
    "combine": "combine",
    "memory_limit_mb": "mem_limit_mb",
}


def combine_settings(stacking: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> dict[str, Any]:
    """The stacker's keywords for the sequence file's `stacking:` settings (unset ones left out,
    so the stacker's automatic choice applies); an unknown name is a programming error."""
    pairs = stacking.items() if isinstance(stacking, Mapping) else stacking
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name not in _COMBINE_NAMES:
            raise ValueError(f"unknown stacking setting {name!r}")
        if value is not None:
            out[_COMBINE_NAMES[name]] = value
    return out


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
    kind: FrameType,
    paths: list[str],
    *,
    darkflat: str | None,
    bias: str | None,
    header: fits.Header,
    stacking: Iterable[tuple[str, Any]] = (),
) -> MasterLike:
    """Build a master with the stacking package: the calibration recipe when present, else a
    plain combine for frames that need no calibration first. `stacking` is the sequence file's
    section (LibraryPolicy.stacking): rejection, thresholds, combination and memory."""
    reason = recipe_missing(kind)
    if reason is not None:
        raise RecipeUnavailable(reason)
    settings = combine_settings(stacking)
    if _probe("agent.stacking.calibrate", "build_master") is None:
        from agent.stacking import calibrate

        result: MasterLike = calibrate.build_master(
            kind.value, paths, darkflat=darkflat, bias=bias, header=header, **settings
        )
        return result
    from agent.stacking import combine as combine_module

    result = combine_module.combine(paths, normalize="none", frame_type=kind.value, header=header, **settings)
    return result


def load_recipe(spec: str) -> Recipe:
    """The function a `module:function` spec names."""
    module, _, name = spec.partition(":")
    func: Recipe = getattr(importlib.import_module(module), name)
    return func
