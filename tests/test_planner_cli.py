"""`obsagent validate` and `obsagent plan` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "night.yaml")
BAD = str(ROOT / "tests" / "bad_sequences" / "filter_not_in_wheel.yaml")


def test_validate_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "M31 (catalogue M31)" in out


def test_validate_bad_file_exits_2_with_file_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", BAD]) == 2
    err = capsys.readouterr().err
    assert f"{BAD}:11: targets.0.exposures.1.filter: filter 'OIII' is not in the wheel" in err


def test_validate_json_lists_problems(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", BAD, "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is False and data["problems"][0]["line"] == 11


def test_plan_json_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "night.png"
    assert main(["plan", EXAMPLE, "--date", "2026-12-21", "--json", "--plot", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["date"] == "2026-12-21" and data["timezone"] == "Europe/Berlin"
    assert data["events"]["sunset"]["time"]["local"].startswith("2026-12-21T15:5")
    assert data["blocks"][0]["target"] == "M31" and data["gaps"]
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_plan_table_shows_local_times(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", EXAMPLE, "--date", "2026-12-21"]) == 0
    out = capsys.readouterr().out
    assert (
        "sunset" in out and "sky flats at dusk" in out and "darks: 120s gain 120 offset 30 bin1 -10C" in out
    )


def test_plan_bad_date_names_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", EXAMPLE, "--date", "21/12/2026"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
