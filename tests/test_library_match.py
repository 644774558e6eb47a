"""Matching a light to masters: a table of cases, each with the choice and its explanation."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from library_fixtures import add_master, light_key

from agent.library.keys import FrameType, LibraryPolicy, SensorKind
from agent.library.match import match_light
from agent.library.store import Library

NOW = time.time()
LIGHT = light_key()
DARK = LIGHT.for_type(FrameType.DARK, 60.0)


@pytest.fixture
def lib(tmp_path: Path):
    with Library(tmp_path) as library:
        yield library


def _dark_choice(lib: Library, light=LIGHT, exposure=60.0, policy=None):
    result = match_light(lib, light, exposure, policy or LibraryPolicy(), now=NOW)
    return result.choices[FrameType.DARK]


def test_exact_match_is_chosen_and_explained(lib: Library) -> None:
    mid = add_master(lib, DARK)
    choice = _dark_choice(lib)
    assert choice.master is not None and choice.master.id == mid
    assert choice.warnings == ()
    assert any(f"master #{mid}" in line and "-10.0 °C" in line for line in choice.explanation)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("offset", 50.0, "offset 50.0 vs 30.0"),
        ("readout_mode", "High Gain", "readout mode High Gain vs None"),
    ],
)
def test_a_differing_field_is_never_used_silently(
    lib: Library, field: str, value: object, words: str
) -> None:
    changes: dict[str, Any] = {field: value}
    mid = add_master(lib, replace(DARK, **changes))
    strict = _dark_choice(lib)
    assert strict.master is None
    assert any(
        f"master #{mid} not used" in e and words in e and "not allowed" in e for e in strict.explanation
    )
    allowing = LibraryPolicy(looser_matches=frozenset({field}))
    loose = _dark_choice(lib, policy=allowing)
    assert loose.master is not None and loose.master.id == mid
    assert len(loose.warnings) == 1 and words in loose.warnings[0] and "looser" in loose.warnings[0]


@pytest.mark.parametrize(
    ("temperature", "used"), [(-10.9, True), (-9.0, True), (-11.2, False), (-8.5, False)]
)
def test_temperature_just_inside_or_outside_tolerance(lib: Library, temperature: float, used: bool) -> None:
    mid = add_master(lib, replace(DARK, temperature=temperature))
    choice = _dark_choice(lib)
    assert (choice.master is not None) is used
    if not used:
        assert any(f"master #{mid} skipped" in e and "outside ±1 °C" in e for e in choice.explanation)
        looser = LibraryPolicy(looser_matches=frozenset({"temperature"}), looser_temperature_within=3.0)
        loose = _dark_choice(lib, policy=looser)
        assert loose.master is not None and "temperature" in loose.warnings[0]


def test_looser_temperature_match_keeps_its_limit(lib: Library) -> None:
    """A weak cooler's +5 °C master is never used for a -10 °C light, however loose the policy."""
    add_master(lib, replace(DARK, temperature=5.0))
    looser = LibraryPolicy(looser_matches=frozenset({"temperature"}), looser_temperature_within=3.0)
    choice = _dark_choice(lib, policy=looser)
    assert choice.master is None
    add_master(lib, replace(DARK, temperature=-7.5))
    choice = _dark_choice(lib, policy=looser)
    assert choice.master is not None and choice.master.key.temperature == -7.5


def test_a_looser_temperature_match_needs_its_limit() -> None:
    from agent.errors import ConfigError

    with pytest.raises(ConfigError, match="temperature_within"):
        LibraryPolicy(looser_matches=frozenset({"temperature"}))


def test_newer_master_wins_and_superseded_one_is_skipped(lib: Library) -> None:
    old = add_master(lib, DARK, created=NOW - 10 * 86400)
    newer = add_master(lib, DARK, created=NOW - 86400)
    choice = _dark_choice(lib)
    assert choice.master is not None and choice.master.id == newer
    assert any("newest of 2" in e for e in choice.explanation)
    newest = add_master(lib, DARK, created=NOW - 3600)
    lib.conn.execute("UPDATE masters SET superseded_by = ? WHERE id IN (?, ?)", (newest, old, newer))
    lib.conn.execute("UPDATE masters SET created_at = ? WHERE id = ?", (NOW - 30 * 86400, newest))
    choice = _dark_choice(lib)
    assert choice.master is not None and choice.master.id == newest
    assert any(f"master #{newer} skipped: superseded by #{newest}" in e for e in choice.explanation)


def test_cmos_dark_needs_the_exact_exposure(lib: Library) -> None:
    add_master(lib, LIGHT.for_type(FrameType.DARK, 120.0))
    assert _dark_choice(lib).master is None
    assert _dark_choice(lib, exposure=119.7).master is not None  # rounded to the nearest second


def test_ccd_dark_of_another_exposure_is_scaled_and_needs_a_bias(lib: Library) -> None:
    ccd_light = replace(LIGHT, sensor_kind=SensorKind.CCD)
    long_dark = add_master(lib, ccd_light.for_type(FrameType.DARK, 300.0), exposure=300.0)
    add_master(lib, ccd_light.for_type(FrameType.DARK, 120.0), exposure=120.0)
    bias = add_master(lib, ccd_light.for_type(FrameType.BIAS))
    add_master(lib, ccd_light.for_type(FrameType.FLAT))
    result = match_light(lib, ccd_light, 60.0, LibraryPolicy(), now=NOW)
    assert set(result.choices) == {FrameType.BIAS, FrameType.DARK, FrameType.FLAT}
    dark = result.choices[FrameType.DARK]
    assert dark.master is not None and dark.master.id == long_dark
    assert dark.scale == pytest.approx(0.2)
    assert any("scaled by 0.200" in e for e in dark.explanation)
    assert result.choices[FrameType.BIAS].master.id == bias  # type: ignore[union-attr]
    assert result.complete and result.warnings == []
    exact = add_master(lib, ccd_light.for_type(FrameType.DARK, 60.0), exposure=60.0)
    again = match_light(lib, ccd_light, 60.0, LibraryPolicy(), now=NOW).choices[FrameType.DARK]
    assert again.master is not None and again.master.id == exact and again.scale == pytest.approx(1.0)


def test_flat_must_match_filter(lib: Library) -> None:
    add_master(lib, LIGHT.for_type(FrameType.FLAT))
    assert match_light(lib, LIGHT, 60.0, LibraryPolicy(), now=NOW).choices[FrameType.FLAT].master is not None
    ha = replace(LIGHT, filter="Ha")
    assert match_light(lib, ha, 60.0, LibraryPolicy(), now=NOW).choices[FrameType.FLAT].master is None


def test_expired_master_is_used_only_with_a_warning(lib: Library) -> None:
    mid = add_master(lib, DARK, created=NOW - 200 * 86400, expires=NOW - 86400)
    choice = _dark_choice(lib)
    assert choice.master is not None and choice.master.id == mid
    assert any("expired" in w for w in choice.warnings)
