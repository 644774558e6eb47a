"""Sequence files: the example loads, defaults are the documented ones, and bad files say what is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import Sequence, SequenceError, load_sequence, parse_sequence
from agent.errors import ConfigError
from agent.sky.catalogue import designations, lookup
from tests.config_fixtures import MINIMAL_SEQUENCE

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted((ROOT / "tests" / "bad_sequences").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+) (\S*) +\| (.+)$")

MINIMAL = MINIMAL_SEQUENCE


def test_example_night_loads_with_its_values() -> None:
    seq = load_sequence(ROOT / "examples" / "night.yaml")
    assert isinstance(seq, Sequence) and seq.version == 1
    assert seq.site.timezone == "Europe/Berlin" and seq.site.horizon == 15
    assert seq.indi.host == "localhost" and seq.indi.port == 7624
    assert seq.camera.sensor == "cmos" and seq.camera.set_point == -10 and seq.camera.gain == 120
    assert seq.filters[0] == "L" and seq.filter_slot("Ha") == 5
    m31, m33, orion = seq.targets
    assert m31.catalogue_name == "M31" and m31.ra_deg == pytest.approx(10.68, abs=0.01)
    assert m33.catalogue_name == "M33"
    assert orion.catalogue_name is None
    assert orion.ra_deg == pytest.approx((5 + 35 / 60 + 17 / 3600) * 15) and orion.dec_deg == pytest.approx(
        -(5 + 23 / 60 + 28 / 3600)
    )
    assert orion.window is not None and (orion.window.start, orion.window.end) == ("21:00", "04:00")
    assert seq.calibration.flats.sky_at_dusk and seq.calibration.flats.sky_at_dawn
    assert seq.sync is None


def test_defaults_are_the_documented_ones() -> None:
    seq = parse_sequence(MINIMAL, "minimal.yaml")
    assert seq.indi.address == "localhost:7624"
    assert (
        seq.indi.devices.wheel is None
        and seq.indi.devices.flat_panel is None
        and seq.indi.devices.mount is None
    )
    assert seq.site.timezone == "UTC" and seq.site.elevation == 0
    cal = seq.calibration
    assert (cal.flats.sun_band.upper, cal.flats.sun_band.lower) == (-2.0, -10.0)
    assert cal.flats.dark_flats and cal.darks.in_gaps and cal.darks.min_gap_minutes == 20
    assert cal.temperature_tolerance == 1.0
    rules = cal.masters
    assert (
        rules.bias.min_frames,
        rules.dark.min_frames,
        rules.darkflat.min_frames,
        rules.flat.min_frames,
    ) == (
        50,
        20,
        20,
        20,
    )
    assert (
        rules.bias.max_age_days,
        rules.dark.max_age_days,
        rules.darkflat.max_age_days,
        rules.flat.max_age_days,
    ) == (
        180,
        90,
        30,
        14,
    )
    looser = cal.allow_looser
    assert looser.temperature_within is None and not looser.scaled_darks and not looser.expired_masters
    assert seq.schedule.max_sun_altitude == -18 and seq.sync is None and seq.targets == []


def test_clock_times_and_sexagesimal_angles_stay_text_until_parsed() -> None:
    # YAML 1.1 would read 22:30 as the base-60 integer 1350 and 05:35:17 as 20117.
    text = MINIMAL + (
        "targets:\n"
        "  - name: Orion\n"
        "    ra: 05:35:17\n"
        "    dec: -05:23:28\n"
        "    window: {start: 22:30, end: 01:15}\n"
        "    exposures: [{filter: L, exposure: 30, count: 5}]\n"
    )
    target = parse_sequence(text).targets[0]
    assert target.ra_deg == pytest.approx((5 + 35 / 60 + 17 / 3600) * 15)
    assert target.dec_deg == pytest.approx(-(5 + 23 / 60 + 28 / 3600))
    assert target.window is not None and (target.window.start, target.window.end) == ("22:30", "01:15")


@pytest.mark.parametrize("name", ["M31", "m 31", "Messier 31", "NGC 224", "ngc224", "Andromeda Galaxy"])
def test_catalogue_names_resolve_offline(name: str) -> None:
    found = lookup(name)
    assert found is not None and found.designation == "M31"
    assert found.ra_deg == pytest.approx(10.68, abs=0.02) and found.dec_deg == pytest.approx(41.27, abs=0.02)


def test_catalogue_holds_every_messier_object_and_bright_ngc() -> None:
    names = designations()
    assert all(f"M{n}" in names for n in range(1, 111))
    seven = lookup("North America Nebula")
    assert (
        seven is not None
        and seven.designation == "NGC 7000"
        and seven.dec_deg == pytest.approx(44.53, abs=0.05)
    )
    assert lookup("Sh2-101") is None


def _expectations(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = EXPECT.match(line)
        if match:
            found.append((int(match.group(1)), match.group(2), match.group(3).strip()))
    return found


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_sequence_gives_the_expected_messages(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} lists no '# expect:' lines"
    with pytest.raises(SequenceError) as caught:
        load_sequence(path)
    problems = caught.value.problems
    for line, key_path, fragment in expected:
        assert any(p.line == line and p.path == key_path and fragment in p.message for p in problems), (
            f"{path.name}: expected '{line} {key_path}: ...{fragment}...'; got:\n{caught.value}"
        )
    assert len(problems) == len(expected), f"{path.name}: unexpected extra problems:\n{caught.value}"
    # One summary line, then every problem as FILE:LINE: key.path: message.
    head, *rest = str(caught.value).splitlines()
    assert f"{len(problems)} problem" in head and "obsagent validate" in head
    assert all(re.match(rf"  {re.escape(str(path))}:\d+: ", row) for row in rest)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(SequenceError) as caught:
        load_sequence(ROOT / "tests" / "bad_sequences" / "calibration_values.yaml")
    assert len(caught.value.problems) >= 8
    assert isinstance(caught.value, ConfigError)


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such sequence file"):
        load_sequence(tmp_path / "absent.yaml")
