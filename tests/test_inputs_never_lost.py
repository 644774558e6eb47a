"""No command overwrites one of its own inputs: `stack -o` naming an input and `calibrate` with an
empty suffix into the lights' folder are refused with one line (exit 2), and nothing changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import agent.cli as cli


def _frame(path: Path, level: float, kind: str = "Dark Frame", exposure: float = 10.0) -> Path:
    rng = np.random.default_rng(int(level))
    h = fits.Header()
    h["IMAGETYP"], h["EXPTIME"] = kind, exposure
    fits.PrimaryHDU(rng.normal(level, 3.0, (12, 16)).astype(np.uint16), h).writeto(path)
    return path


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def _refused(argv: list[str], folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    before = _digest(folder)
    assert cli.main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert _digest(folder) == before
    return err[0]


@pytest.fixture
def darks(tmp_path: Path) -> list[Path]:
    return [_frame(tmp_path / f"dark_{i}.fits", 500.0 + i) for i in range(3)]


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
def test_stack_output_naming_an_input(darks: list[Path], tmp_path: Path, spelling: str, capsys) -> None:
    out = {
        "same": str(darks[1]),
        "dotted": str(tmp_path / "." / darks[1].name),
        "symlink": str(tmp_path / "link.fits"),
    }[spelling]
    if spelling == "symlink":
        os.symlink(darks[1], out)
    line = _refused(["stack", *map(str, darks), "-o", out], tmp_path, capsys)
    assert "one of the inputs" in line and "another output name" in line


def test_stack_output_naming_a_calibration_master(tmp_path: Path, capsys) -> None:
    flats = [_frame(tmp_path / f"flat_{i}.fits", 20000.0 + i, "Flat Field", 1.0) for i in range(3)]
    bias = _frame(tmp_path / "bias.fits", 300.0, "Bias Frame", 0.0)
    argv = ["stack", *map(str, flats), "--type", "flat", "--bias", str(bias), "-o", str(bias)]
    assert "one of the inputs" in _refused(argv, tmp_path, capsys)


def test_stack_rejection_map_naming_an_input(darks: list[Path], tmp_path: Path, capsys) -> None:
    victim = _frame(tmp_path / "m_rejlow.fits", 700.0)
    argv = ["stack", *map(str, darks), str(victim), "--rejection-maps", "-o", str(tmp_path / "m.fits")]
    assert "m_rejlow.fits" in _refused(argv, tmp_path, capsys)


def test_stack_to_a_new_name_still_works(darks: list[Path], tmp_path: Path) -> None:
    assert cli.main(["stack", *map(str, darks), "--json", "-o", str(tmp_path / "out" / "master.fits")]) == 0


def test_calibrate_with_empty_suffix_into_the_lights_folder(tmp_path: Path, capsys) -> None:
    lights = [_frame(tmp_path / f"light_{i}.fits", 1500.0 + i, "Light Frame") for i in range(2)]
    dark = tmp_path.parent / f"{tmp_path.name}_dark.fits"
    _frame(dark, 500.0)
    argv = ["calibrate", *map(str, lights), "--dark", str(dark), "--suffix", "", "-o", str(tmp_path)]
    line = _refused(argv, tmp_path, capsys)
    assert "would overwrite" in line and "--suffix" in line


def test_calibrate_output_naming_the_master(tmp_path: Path, capsys) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    out.mkdir()
    light = _frame(raw / "m31.fits", 1500.0, "Light Frame")
    dark = _frame(out / "m31_cal.fits", 500.0)  # the master happens to have the output's name
    argv = ["calibrate", str(light), "--dark", str(dark), "-o", str(out)]
    assert "would overwrite" in _refused(argv, out, capsys)


def test_calibrate_two_lights_of_one_name(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    lights = [_frame(a / "m31.fits", 1500.0, "Light Frame"), _frame(b / "m31.fits", 1501.0, "Light Frame")]
    dark = _frame(tmp_path / "dark.fits", 500.0)
    out = tmp_path / "out"
    assert cli.main(["calibrate", *map(str, lights), "--dark", str(dark), "-o", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "both be written" in err[0]
    assert not out.exists() or not any(out.iterdir())
