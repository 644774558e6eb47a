"""`obsagent report` judges "still needed" with the sequence file's policy when given one, and a
night that does not exist is one line, never an empty report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from library_fixtures import nina_header, write_frame

import agent.cli as cli
from agent.config import parse_sequence
from agent.library.policy import library_policy
from agent.library.store import Library
from agent.night.progress import ProgressStore, RunProgress
from agent.night.report import build_report
from tests.config_fixtures import MINIMAL_SEQUENCE

NIGHT = "2026-11-29"
SEQUENCE = MINIMAL_SEQUENCE + """\
  masters:
    dark: {min_frames: 5, max_age_days: 90}
"""


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    light = write_frame(
        root / "frames" / NIGHT / "M31" / "light_1.fits",
        nina_header("light", 60.0, when=time.time() - 3600, filt="L"),
    )
    with Library(root) as lib:
        lib.ingest_file(light)
    ProgressStore(root).save(RunProgress(night=NIGHT, state="done"))
    return root


def _dark_target(report: dict[str, object]) -> int:
    needs = report["needs"]
    assert isinstance(needs, list)
    (dark,) = [n for n in needs if n["frame_type"] == "dark"]
    return int(dark["target"])


def test_report_takes_the_sequence_policy(data: Path) -> None:
    assert _dark_target(build_report(data, NIGHT)) == 20
    policy = library_policy(parse_sequence(SEQUENCE))
    assert _dark_target(build_report(data, NIGHT, policy)) == 5


def test_report_command_reads_the_sequence_file(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = tmp_path / "night.yaml"
    seq.write_text(SEQUENCE)
    assert cli.main(["report", "--data", str(data), "--night", NIGHT, "--sequence", str(seq), "--json"]) == 0
    assert _dark_target(json.loads(capsys.readouterr().out)) == 5


@pytest.mark.parametrize("night", ["2026-13-45", "yesterday", "2026-02-30"])
def test_a_date_that_does_not_exist_is_one_line(
    data: Path, night: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", "--data", str(data), "--night", night]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and night in err[0] and "YYYY-MM-DD" in err[0]


def test_a_night_that_never_ran_says_so(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = build_report(data, "2026-03-14")
    assert (
        report["night"] is None
        and "no night 2026-03-14" in str(report["error"])
        and NIGHT in str(report["error"])
    )
