"""Inputs that used to give wrong output with exit 0: each is now one line and exit 2, and
nothing is written or modified."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from library_fixtures import nina_header, write_frame

import agent.cli as cli
from agent.fitsfile import UnreadableImage
from agent.library.database import LibraryError
from agent.library.migrations import newest_known
from agent.library.store import Library
from agent.stacking.combine import combine


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


def _nan_frames(folder: Path, n: int = 3, value: float = np.nan) -> list[str]:
    paths = []
    for i in range(n):
        path = folder / f"frame_{i}.fits"
        fits.PrimaryHDU(np.full((8, 10), value, np.float32)).writeto(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_all_nan_frames_make_no_master(tmp_path: Path, value: float) -> None:
    with pytest.raises(UnreadableImage, match="frame_0.fits: every pixel is masked .*NaN or infinite"):
        combine(_nan_frames(tmp_path, value=value), frame_type="dark")


def test_stack_of_all_nan_frames_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "master.fits"
    assert cli.main(["stack", *_nan_frames(tmp_path), "--type", "dark", "-o", str(out)]) == 2
    assert "nothing to stack" in _one_line(capsys)
    assert not out.exists()


def test_frames_with_some_nan_still_stack(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        data = np.full((8, 10), 100.0 + i, np.float32)
        data[0, 0] = np.nan
        path = tmp_path / f"f{i}.fits"
        fits.PrimaryHDU(data).writeto(path)
        paths.append(str(path))
    master = combine(paths, frame_type="dark")
    assert np.isfinite(master.data[1:]).all()


@pytest.mark.parametrize("night", ["2026-13-45", "yesterday", "2026-02-30", "26-1-1"])
def test_report_of_a_date_that_does_not_exist(tmp_path: Path, night: str, capsys) -> None:
    assert cli.main(["report", "--data", str(tmp_path), "--night", night]) == 2
    line = _one_line(capsys)
    assert night in line and "YYYY-MM-DD" in line


def _newer_library(root: Path) -> Path:
    with Library(root):
        pass
    db = root / "library.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (newest_known() + 1,))
    conn.commit()
    conn.close()
    return db


def _digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir()) if p.is_file()}


def test_ingest_into_a_newer_library_is_refused_untouched(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    _newer_library(root)
    frame = write_frame(tmp_path / "dark_1.fits", nina_header("dark", 60.0))
    before = _digests(root)
    assert cli.main(["library", "ingest", str(frame), "--data", str(root)]) == 2
    line = _one_line(capsys)
    assert "newer obsagent" in line and "upgrade" in line
    assert _digests(root) == before


def test_a_newer_library_in_rollback_mode_is_not_switched_to_wal(tmp_path: Path) -> None:
    root = tmp_path / "data"
    db = _newer_library(root)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(LibraryError, match="newer obsagent"):
        Library(root)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not (root / "library.sqlite-wal").exists()
