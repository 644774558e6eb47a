"""Each key of the sequence file's matching policy and of `stacking:` changes what the agent does.

Every case builds the LibraryPolicy the night uses (`library_policy`) from a small sequence file,
with and without the key, and shows the difference: the master chosen, or the master built.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from library_fixtures import add_master, light_key

from agent.config import Sequence, parse_sequence
from agent.library.keys import FrameType
from agent.library.match import match_light
from agent.library.recipes import combine_settings, stacking_recipe
from agent.library.store import Library
from agent.night.services import library_policy
from tests.config_fixtures import MINIMAL_SEQUENCE

NOW = time.time()
LIGHT = light_key()
DARK = LIGHT.for_type(FrameType.DARK, 60.0)

BASE = MINIMAL_SEQUENCE


def sequence(extra: str = "") -> Sequence:
    return parse_sequence(BASE + extra)


def looser(**keys: object) -> Sequence:
    text = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in keys.items())
    return sequence(f"  allow_looser: {{{text}}}\n")


@pytest.fixture
def lib(tmp_path: Path):
    with Library(tmp_path) as library:
        yield library


def dark_choice(lib: Library, seq: Sequence, light=LIGHT, exposure: float = 60.0):
    return match_light(lib, light, exposure, library_policy(seq), now=NOW)


def test_temperature_tolerance(lib: Library) -> None:
    mid = add_master(lib, replace(DARK, temperature=-11.5))
    assert dark_choice(lib, sequence()).choices[FrameType.DARK].master is None
    wide = sequence("  temperature_tolerance: 2\n")
    chosen = dark_choice(lib, wide).choices[FrameType.DARK]
    assert chosen.master is not None and chosen.master.id == mid and chosen.warnings == ()


def test_temperature_within(lib: Library) -> None:
    mid = add_master(lib, replace(DARK, temperature=-12.5))
    assert dark_choice(lib, sequence()).choices[FrameType.DARK].master is None
    assert dark_choice(lib, looser(temperature_within=2)).choices[FrameType.DARK].master is None
    chosen = dark_choice(lib, looser(temperature_within=3)).choices[FrameType.DARK]
    assert chosen.master is not None and chosen.master.id == mid
    assert "temperature" in chosen.warnings[0]


def test_expired_masters(lib: Library) -> None:
    mid = add_master(lib, DARK, created=NOW - 200 * 86400, expires=NOW - 86400)
    strict = dark_choice(lib, sequence()).choices[FrameType.DARK]
    assert strict.master is None
    assert any(
        f"#{mid} not used: expired" in line and "expired_masters" in line for line in strict.explanation
    )
    allowed = dark_choice(lib, looser(expired_masters=True)).choices[FrameType.DARK]
    assert allowed.master is not None and allowed.master.id == mid
    assert any("expired" in w for w in allowed.warnings)


def test_expired_master_is_not_used_when_a_fresh_one_exists(lib: Library) -> None:
    add_master(lib, DARK, created=NOW - 200 * 86400, expires=NOW - 86400)
    fresh = add_master(lib, DARK, created=NOW - 2 * 86400)
    chosen = dark_choice(lib, looser(expired_masters=True)).choices[FrameType.DARK]
    assert chosen.master is not None and chosen.master.id == fresh and chosen.warnings == ()


def test_scaled_darks_on_cmos_are_scaled_over_a_bias(lib: Library) -> None:
    long_dark = add_master(lib, LIGHT.for_type(FrameType.DARK, 120.0), exposure=120.0)
    bias = add_master(lib, LIGHT.for_type(FrameType.BIAS))
    strict = dark_choice(lib, sequence())
    assert strict.choices[FrameType.DARK].master is None and FrameType.BIAS not in strict.choices
    scaled = dark_choice(lib, looser(scaled_darks=True))
    dark = scaled.choices[FrameType.DARK]
    assert dark.master is not None and dark.master.id == long_dark
    assert dark.scale == pytest.approx(0.5) and any("scaled by 0.500" in e for e in dark.explanation)
    # the dark is applied over the bias, so the light needs it too
    bias_choice = scaled.choices[FrameType.BIAS]
    assert bias_choice.master is not None and bias_choice.master.id == bias


def test_scaled_cmos_dark_without_a_bias_leaves_the_light_uncalibrated(lib: Library) -> None:
    add_master(lib, LIGHT.for_type(FrameType.DARK, 120.0), exposure=120.0)
    add_master(lib, LIGHT.for_type(FrameType.FLAT))
    result = dark_choice(lib, looser(scaled_darks=True))
    assert not result.complete and result.choices[FrameType.BIAS].master is None


def test_matched_cmos_dark_needs_no_bias(lib: Library) -> None:
    add_master(lib, DARK)
    result = dark_choice(lib, looser(scaled_darks=True))
    assert FrameType.BIAS not in result.choices and result.choices[FrameType.DARK].scale is None


def _frames(tmp_path: Path) -> list[str]:
    """Fifteen tiny darks; one has a cosmic-ray-like hit that rejection removes and a plain mean keeps."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for i in range(15):
        data = rng.normal(1000.0, 5.0, (16, 16)).astype(np.uint16)
        if i == 0:
            data[4, 4] = 60000
        h = fits.Header()
        h["IMAGETYP"], h["EXPTIME"] = "Dark Frame", 60.0
        path = tmp_path / f"dark_{i}.fits"
        fits.PrimaryHDU(data, h).writeto(path)
        paths.append(str(path))
    return paths


def _built(tmp_path: Path, seq: Sequence) -> np.ndarray:
    policy = library_policy(seq)
    master = stacking_recipe(
        FrameType.DARK,
        _frames(tmp_path),
        darkflat=None,
        bias=None,
        header=fits.Header(),
        stacking=policy.stacking,
    )
    return np.asarray(master.data)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("section", "differs"),
    [
        ("{rejection: none}", True),  # the hit stays in a plain mean
        ("{rejection: sigma, low: 3, high: 3}", False),
        ("{rejection: sigma, low: 3, high: 100}", True),  # an upper threshold too high to reject it
        ("{rejection: none, combine: median}", False),  # the median ignores the hit
    ],
)
def test_stacking_section_reaches_the_master(tmp_path: Path, section: str, differs: bool) -> None:
    clean = _built(tmp_path / "a", sequence("stacking: {rejection: sigma}\n"))
    other = _built(tmp_path / "b", sequence(f"stacking: {section}\n"))
    assert clean[4, 4] < 1100
    assert bool(other[4, 4] > 2000) is differs


def test_stacking_settings_name_the_stacker_keywords() -> None:
    seq = sequence(
        "stacking: {rejection: winsorized, low: 2.5, high: 3, combine: median, memory_limit_mb: 256}\n"
    )
    assert combine_settings(library_policy(seq).stacking) == {
        "method": "winsorized",
        "low": 2.5,
        "high": 3.0,
        "combine": "median",
        "mem_limit_mb": 256,
    }
    assert combine_settings(library_policy(sequence()).stacking) == {
        "method": "auto",
        "combine": "mean",
        "mem_limit_mb": 1024,
    }


def _exposed(level: float, exposure: float) -> tuple[np.ndarray, fits.Header]:
    h = fits.Header()
    h["EXPTIME"] = exposure
    return np.full((16, 16), level, np.float32), h


def test_a_cmos_dark_of_another_exposure_is_never_subtracted_as_it_is() -> None:
    from agent.errors import ConfigError
    from agent.stacking.lights import CalibrationOptions, calibrate
    from agent.stacking.masterset import MasterSet

    light = _exposed(1000.0 + 60.0, 60.0)  # bias 1000, 1 ADU/s of dark current
    dark = _exposed(1000.0 + 120.0, 120.0)
    options = CalibrationOptions(sensor="cmos", cosmetic=False, pedestal=0.0)
    with pytest.raises(ConfigError, match="master bias"):
        calibrate(light, MasterSet(dark=dark), options)
    out = calibrate(light, MasterSet(dark=dark, bias=_exposed(1000.0, 0.0)), options)
    assert float(np.median(out.data)) == pytest.approx(0.0, abs=1e-3)
    assert any(w.check == "dark-scaling" for w in out.warnings)
