"""Normalisation of frames before rejection and combination.

Each frame's values become x' = x * factor + offset, folded into the kernel's decode step:
- none: factor 1, offset 0 (bias, dark, dark flat);
- multiplicative: x * L_ref / L_i, L = median of the frame, reference = the first frame (flats);
- additive-scale: (x - L_i) * S_ref / S_i + L_ref, S = 1.4826 * MAD (lights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.errors import ObsAgentError
from agent.stacking.stats import SampleStats

NORMALIZATIONS = ("none", "multiplicative", "additive-scale")


class NormalizationError(ObsAgentError):
    """A frame's statistics make the requested normalisation meaningless."""


@dataclass(frozen=True)
class Normalization:
    factor: float
    offset: float


def normalization_factors(
    method: str, stats: Sequence[SampleStats], labels: Sequence[str]
) -> list[Normalization]:
    """Per-frame factor and offset for `method`, the first frame being the reference."""
    if method == "none":
        return [Normalization(1.0, 0.0) for _ in stats]
    ref = stats[0]
    out: list[Normalization] = []
    for st, label in zip(stats, labels, strict=True):
        if method == "multiplicative":
            if not st.location > 0:
                raise NormalizationError(
                    f"{label}: median {st.location:g} is not positive, so it cannot be normalised "
                    "multiplicatively; use --normalize none or drop the frame"
                )
            out.append(Normalization(ref.location / st.location, 0.0))
        elif method == "additive-scale":
            if not st.scale > 0:
                raise NormalizationError(
                    f"{label}: the frame has no spread (MAD 0), so it cannot be scaled; "
                    "use --normalize none or drop the frame"
                )
            factor = ref.scale / st.scale
            out.append(Normalization(factor, ref.location - st.location * factor))
        else:
            raise NormalizationError(
                f"unknown normalisation {method!r}; choose one of {', '.join(NORMALIZATIONS)}"
            )
    return out
