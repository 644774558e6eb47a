"""Bad folders, damaged libraries and unforeseen errors: one line naming the fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import agent.cli as cli


def obsagent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip() and "connectServer" not in line]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_data_directory_that_is_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("not a folder")
    result = obsagent("library", "status", "--data", str(data))
    assert result.returncode == 2
    line = one_line(result)
    assert str(data) in line or "not a folder" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o500)
    try:
        result = obsagent("library", "status", "--data", str(data))
    finally:
        data.chmod(0o700)
    assert result.returncode == 2
    assert "permission" in one_line(result)


@pytest.mark.parametrize("content", [b"", b"SQLite format 3\x00" + b"\x07" * 5000, os.urandom(8192)])
def test_damaged_or_foreign_library(tmp_path: Path, content: bytes) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "library.sqlite").write_bytes(content)
    before = (data / "library.sqlite").read_bytes()
    result = obsagent("library", "status", "--data", str(data))
    if content == b"":
        assert result.returncode == 0, result.stderr  # an empty file is a new library
        return
    assert result.returncode == 2
    assert "library" in one_line(result)
    assert (data / "library.sqlite").read_bytes() == before, "a damaged library is never modified"


def test_an_unforeseen_error_is_one_line_with_a_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import agent.commands.validate as validate

    def broken(args: object) -> int:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(validate, "run", broken)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    seq = tmp_path / "night.yaml"
    seq.write_text("version: 1\n")
    code = cli.main(["validate", str(seq)])
    err = capsys.readouterr().err
    assert code == 70
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "something nobody expected" in err
    log = Path(err.split("details in ", 1)[1].split(" (please", 1)[0])
    assert log.is_file() and "Traceback" in log.read_text() and "RuntimeError" in log.read_text()


def test_os_errors_name_the_file_and_the_fix() -> None:
    import errno

    full = OSError(errno.ENOSPC, "No space left on device", "/media/usb/frames/x.fits")
    assert cli.os_error_line(full) == "/media/usb/frames/x.fits: the disk is full; free some space or point --data at another disk"
    gone = FileNotFoundError(errno.ENOENT, "No such file", "/media/usb/data")
    assert "USB disk unplugged" in cli.os_error_line(gone)
