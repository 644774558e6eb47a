"""Calibrate one light with the masters the library matches for it, and record the outcome.

The library picks (never silently looser than the policy allows), stacking/calibrate does the
numbers, and the light's row says which masters were used and why — or why it could not be done.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.errors import ObsAgentError
from agent.library.keys import ConfigKey, FrameType, LibraryPolicy
from agent.library.store import Library

log = logging.getLogger(__name__)


def calibrated_path(lib: Library, light: Path) -> Path:
    """Calibrated lights mirror the frames tree under `<data>/calibrated/`."""
    light = light.resolve()
    frames = lib.frames_dir.resolve()
    try:
        relative = light.relative_to(frames)
    except ValueError:
        relative = Path(light.name)
    return lib.root / "calibrated" / relative.with_name(relative.stem + "_cal.fits")


# Calibrated lights keep this pedestal so faint background noise is never clipped at zero.
OUTPUT_PEDESTAL_ADU = 100.0


def calibrate_light(lib: Library, path: Path, policy: LibraryPolicy, pedestal: float = OUTPUT_PEDESTAL_ADU) -> str:
    """Returns the status recorded: calibrated, no_masters or failed."""
    from agent.library.match import match_light
    from agent.stacking.calibrate import CalibrationOptions, MasterSet, calibrate

    row = lib.light_frame(path)
    if row is None:
        raise ObsAgentError(f"{path} is not a light in the library; ingest it first")
    frame_id = int(row["id"])
    key = ConfigKey.from_row(row, temperature=row["temperature"])
    result = match_light(lib, key, float(row["exposure"]), policy)
    if not result.complete:
        missing = [k.value for k, c in result.choices.items() if c.master is None]
        lib.record_light_calibration(
            frame_id, status="no_masters", masters_used=result.masters_used, warnings=result.warnings,
            reason="no usable master: " + ", ".join(missing) + " — " + "; ".join(result.explain()),
        )
        return "no_masters"
    paths = {kind: choice.master.path for kind, choice in result.choices.items() if choice.master is not None}
    masters = MasterSet(
        bias=paths.get(FrameType.BIAS), dark=paths.get(FrameType.DARK), flat=paths.get(FrameType.FLAT)
    )
    options = CalibrationOptions(
        sensor=key.sensor_kind.value, temperature_tolerance=policy.temperature_tolerance, pedestal=pedestal
    )
    try:
        out = calibrate(path, masters, options)
        if out.clipped_fraction > policy.max_clipped_fraction:
            raise ObsAgentError(
                f"{100 * out.clipped_fraction:.1f} % of the pixels clipped (limit "
                f"{100 * policy.max_clipped_fraction:g} %): the masters do not match this light — "
                f"check masters {', '.join(f'#{m}' for m in result.masters_used.values())}"
            )
        target = calibrated_path(lib, Path(path))
        out.write(target)
    except (ObsAgentError, OSError, ValueError) as exc:
        lib.record_light_calibration(
            frame_id, status="failed", masters_used=result.masters_used, warnings=result.warnings, reason=str(exc)
        )
        return "failed"
    warnings = list(result.warnings) + [getattr(w, "message", str(w)) for w in out.warnings]
    lib.record_light_calibration(
        frame_id, status="calibrated", masters_used=result.masters_used, warnings=warnings,
        output_path=str(target),
    )
    return "calibrated"
