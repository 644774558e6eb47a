"""The masters of one configuration, prepared once for every light they calibrate.

Preparing (range checks, the dark's offset and thermal parts, the flat's scale s0 / MF, the defect
map) does not depend on the light, so it is done on the first light and cached on the MasterSet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.stacking import cosmetic, quality
from agent.stacking.darkopt import DarkOptimizer
from agent.stacking.masters import MasterFrame, as_master
from agent.stacking.quality import QualityIssue

if TYPE_CHECKING:
    from agent.stacking.lights import CalibrationOptions


@dataclass
class PreparedMasters:
    """Everything about the masters that does not depend on the light, computed once."""

    offset: np.ndarray | None  # MD (matched) or MB
    thermal: np.ndarray | None  # MD - MB for scaling
    flat_scale: np.ndarray | None  # s0 / MF (0 where MF <= 0)
    s0: dict[str, float]
    defects: np.ndarray | None
    issues: list[QualityIssue]
    defect_ys: np.ndarray | None = None  # the defect pixels, listed once
    defect_xs: np.ndarray | None = None
    flat_blocks: np.ndarray | None = None  # large-scale shape of the flat (residual vignetting check)
    optimizer: DarkOptimizer | None = None


@dataclass
class MasterSet:
    """The masters for one configuration; preparation (defects, flat scale) is cached here."""

    bias: Any = None
    dark: Any = None
    flat: Any = None
    _prepared: dict[tuple[object, ...], PreparedMasters] = field(default_factory=dict, repr=False, init=False)

    def __post_init__(self) -> None:
        self.bias = as_master(self.bias, "bias")
        self.dark = as_master(self.dark, "dark")
        self.flat = as_master(self.flat, "flat")


def prepare(
    masters: MasterSet, options: CalibrationOptions, scaled: bool, light_full: int, cfa: str | None
) -> PreparedMasters:
    """The light-independent part of calibrating with `masters`, computed once per key and cached
    on the set, so every light after the first pays only for its own pixels."""
    key = (scaled, options.cfa_separate, options.rescale_bit_depth, options.cosmetic, light_full, cfa)
    if key in masters._prepared:
        return masters._prepared[key]
    issues: list[QualityIssue] = []
    md, mb, mf = masters.dark, masters.bias, masters.flat

    def ranged(m: MasterFrame) -> np.ndarray:
        factor = quality.check_bit_depth(
            light_full,
            quality.full_scale(m.data, m.header),
            f"{m.name} ({m.kind})",
            rescale=options.rescale_bit_depth,
        )
        if factor != 1.0:
            issues.append(QualityIssue("bit-depth", f"{m.name} rescaled by {factor:g} to the light's range"))
            return (m.data * np.float32(factor)).astype(np.float32)
        return np.ascontiguousarray(m.data, np.float32)

    bias = ranged(mb) if mb is not None else None
    dark = ranged(md) if md is not None else None
    if dark is not None:
        assert md is not None
        quality.check_dark_pedestal(dark, bias=bias, what=md.name)
        issues += quality.check_master_dark(
            int(md.header.get("NHOTPIX", -1)) if "NHOTPIX" in md.header else -1,
            quality.exposure_of(md.header),
        )
    offset: np.ndarray | None
    thermal = None
    if scaled:
        assert bias is not None and dark is not None
        offset = bias
        thermal = (dark - bias).astype(np.float32)
    else:
        offset = dark if dark is not None else bias

    flat_scale = None
    s0: dict[str, float] = {}
    if mf is not None:
        f = ranged(mf)
        issues += [i for i in quality.check_master_flat(f, mf.header) if i.check != "flat-nonpositive"]
        good = f > 0
        if not good.any():  # s0 / MF would divide by zero everywhere
            raise quality.SuspectMaster(f"{mf.name}: master flat has no positive pixel; rebuild it from lit flats")
        flat_scale = np.zeros(f.shape, np.float32)
        if cfa is not None and options.cfa_separate:
            for colour, parities in cosmetic.cfa_channels(cfa).items():
                vals = np.concatenate([f[r::2, c::2][good[r::2, c::2]] for r, c in parities])
                if vals.size == 0:
                    raise quality.SuspectMaster(f"{mf.name}: no positive {colour} pixel in the master flat; rebuild it")
                s0[colour] = float(vals.mean(dtype=np.float64))
                for r, c in parities:
                    sub, g = f[r::2, c::2], good[r::2, c::2]
                    view = flat_scale[r::2, c::2]
                    view[g] = s0[colour] / sub[g]
        else:
            s0["all"] = float(f[good].mean(dtype=np.float64))
            np.divide(s0["all"], f, out=flat_scale, where=good)  # no full-frame temporaries
    defects = ys = xs = None
    if options.cosmetic:
        defects = _defect_map(md, mf, cfa)
        if defects is not None:
            ys, xs = (a.astype(np.int64) for a in np.nonzero(defects))
    flat_blocks = quality.block_medians(mf.data) if mf is not None else None
    plan = PreparedMasters(offset, thermal, flat_scale, s0, defects, issues, ys, xs, flat_blocks)
    masters._prepared[key] = plan
    return plan


def _defect_map(md: MasterFrame | None, mf: MasterFrame | None, cfa: str | None) -> np.ndarray | None:
    """Union of the masters' stored defect maps; computed from the data when a master has none."""
    maps = []
    for m in (md, mf):
        if m is None:
            continue
        if m.defects is None:
            found, _ = cosmetic.find_defects(
                m.data if m.kind == "dark" else None, m.data if m.kind == "flat" else None, cfa
            )
            m.defects = found
        maps.append(m.defects)
    if not maps:
        return None
    out = maps[0].copy()
    for extra in maps[1:]:
        out[out == 0] = extra[out == 0]
    return out


__all__ = ["MasterSet", "PreparedMasters", "prepare"]
