"""The data folder is relocatable and shareable: copied to another disk it answers as before,
a folder copied without its files says so, and every file obsagent writes has the user's umask."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from library_fixtures import nina_header, write_series

from agent.cli import main
from agent.library.keys import LibraryPolicy
from agent.library.migrations import newest_known
from agent.library.queries import files
from agent.library.queries.nights import night_report
from agent.library.queries.readonly import open_readonly
from agent.library.store import Library

NIGHT = "2026-03-14"
REPO = Path(__file__).resolve().parent.parent
LOGGER = "agent.library.store"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `obsagent ARGV` in this process; its standard output (it must succeed)."""
    code = main(list(argv))
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def answers(capsys: pytest.CaptureFixture[str], data: Path) -> dict[str, Any]:
    """What a user reads of the library: the night's report and the library's tables."""
    d = str(data)
    needs = json.loads(cli(capsys, "library", "needs", "--data", d, "--json"))
    needs.pop("seconds")  # how long the answer took
    return {
        "report": json.loads(cli(capsys, "report", "--night", NIGHT, "--data", d, "--json")),
        "needs": needs,
        "masters": json.loads(cli(capsys, "library", "masters", "--all", "--data", d, "--json")),
        "lights": json.loads(cli(capsys, "library", "lights", "--data", d, "--json")),
        "frames": json.loads(cli(capsys, "library", "frames", "--data", d, "--json")),
        "status": json.loads(cli(capsys, "library", "status", "--data", d, "--json")),
    }


def moved(answer: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    """The answers of the folder at `old` as they must read once it is at `new`."""
    text = json.dumps(answer).replace(str(old.resolve()), str(new.resolve()))
    return dict(json.loads(text))


def build_library(capsys: pytest.CaptureFixture[str], data: Path, elsewhere: Path) -> None:
    """A night's darks, biases and lights under the data folder, darks from another folder, and
    masters built through the CLI."""
    night = data / "frames" / NIGHT
    # named as the night names its captures (`captures.capture_path`)
    write_series(night / "dark", "dark_60s", [nina_header("dark", 60) for _ in range(5)])
    write_series(night / "bias", "bias_0.001s", [nina_header("bias", 0.001) for _ in range(5)], level=500.0)
    write_series(night / "M31", "light_M31_L_60s", [nina_header("light", 60, filt="L") for _ in range(2)])
    write_series(elsewhere, "dark", [nina_header("dark", 120) for _ in range(3)])  # outside the folder
    out = json.loads(
        cli(capsys, "library", "ingest", str(data / "frames"), str(elsewhere), "--data", str(data),
            "--min-frames", "dark=5", "--min-frames", "bias=5", "--json")
    )  # fmt: skip
    assert out["counts"] == {"added": 15}
    assert len(out["sweep"]["masters_built"]) == 2


def test_a_copied_data_folder_answers_as_the_original_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    original, elsewhere = tmp_path / "pi" / "data", tmp_path / "imports"
    build_library(capsys, original, elsewhere)
    before = answers(capsys, original)
    assert len(before["masters"]) == 2 and before["report"]["captured"] == {"dark": 5, "bias": 5, "light": 2}
    copy = tmp_path / "nas" / "obsagent"
    shutil.copytree(original, copy, symlinks=True)
    original.rename(tmp_path / "pi" / "gone")  # the old disk is no longer there

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        after = answers(capsys, copy)
    assert after == moved(before, original, copy)
    assert all(Path(m["path"]).is_file() and copy.resolve() in Path(m["path"]).parents for m in after["masters"])
    assert not [r for r in caplog.records if "missing on disk" in r.getMessage()]
    # the same files ingested again at the new place are known: nothing is recorded twice
    again = json.loads(cli(capsys, "library", "ingest", str(copy / "frames"), str(elsewhere),
                           "--data", str(copy), "--json"))  # fmt: skip
    assert again["counts"] == {"unchanged": 15}
    # the web (read-only) serves the masters from the new place and reports the same night
    web = open_readonly(copy)
    assert web is not None
    with web:
        served = [files.known_file(web, "master", int(m["id"])) for m in after["masters"]]
        assert all(p is not None and p.parent.parent.parent == copy.resolve() for p in served)
        assert night_report(web, copy, NIGHT, LibraryPolicy())["captured"] == before["report"]["captured"]
    # a night resumed at the new place counts what it already captured
    with Library.open(copy) as lib:
        assert lib.count_captured(lib.night_dir(NIGHT), "dark", 60) == 5
        assert lib.count_captured(lib.night_dir(NIGHT), "light", 60, "L", "M31") == 2
        assert lib.orphans() == []
    # the darks ingested from elsewhere stay where they are, named by their absolute path
    outside = [f["path"] for f in after["frames"] if not Path(f["path"]).is_relative_to(copy.resolve())]
    assert sorted(Path(p).parent for p in outside) == [elsewhere.resolve()] * 3


def test_files_missing_from_a_moved_folder_are_reported_not_silent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "imports"
    build_library(capsys, data, elsewhere)
    copy = tmp_path / "copy"
    shutil.copytree(data, copy, ignore=shutil.ignore_patterns("masters"))  # the masters were left behind
    shutil.rmtree(elsewhere)  # and the imported darks are gone
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        masters = json.loads(cli(capsys, "library", "masters", "--data", str(copy), "--json"))
    assert len(masters) == 2  # the library still says what it holds
    [line] = {r.getMessage() for r in caplog.records if "missing on disk" in r.getMessage()}
    assert "masters/" in line and "outside the data folder" in line and str(copy.resolve()) in line


def test_a_library_written_with_absolute_paths_is_converted_where_it_now_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder an older obsagent wrote (absolute paths, schema 1) and then copied elsewhere."""
    old, elsewhere = tmp_path / "old", tmp_path / "imports"
    build_library(capsys, old, elsewhere)
    before = answers(capsys, old)
    root = str(old.resolve())
    with sqlite3.connect(old / "library.sqlite") as conn:
        for table, column in (("frames", "path"), ("masters", "path"), ("lights", "output_path")):
            conn.execute(f"UPDATE {table} SET {column} = ? || '/' || {column} "
                         f"WHERE {column} IS NOT NULL AND {column} NOT LIKE '/%'", (root,))  # fmt: skip
        conn.execute("DELETE FROM schema_version WHERE version > 1")
    new = tmp_path / "new"
    shutil.copytree(old, new)
    shutil.rmtree(old)
    assert answers(capsys, new) == moved(before, old, new)
    with sqlite3.connect(new / "library.sqlite") as conn:
        recorded = [r[0] for r in conn.execute("SELECT path FROM frames UNION ALL SELECT path FROM masters")]
    assert sum(p.startswith("frames/") or p.startswith("masters/") for p in recorded) == 12 + 2
    assert sum(p.startswith(str(elsewhere.resolve())) for p in recorded) == 3


def test_a_folder_from_a_newer_obsagent_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    build_library(capsys, data, tmp_path / "imports")
    with sqlite3.connect(data / "library.sqlite") as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (newest_known() + 1,))
    conn.close()
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    files = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    assert main(["library", "masters", "--data", str(copy), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "newer obsagent" in err
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == files


def run_cli(umask: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """`obsagent ARGV` in its own process, started with `umask`."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))", *argv],
        cwd=REPO, capture_output=True, text=True, timeout=240, preexec_fn=lambda: os.umask(umask),  # noqa: PLW1509
    )  # fmt: skip


@pytest.mark.parametrize(("umask", "file_mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_every_file_obsagent_writes_has_the_users_umask(tmp_path: Path, umask: int, file_mode: int) -> None:
    frames = tmp_path / "incoming"
    write_series(frames, "dark", [nina_header("dark", 30) for _ in range(5)])
    data = tmp_path / "data"
    done = run_cli(umask, "library", "ingest", str(frames), "--data", str(data), "--min-frames", "dark=5", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sweep"]["masters_built"]
    done = run_cli(umask, "report", "--data", str(data), "--night", NIGHT)
    written = sorted(p for p in data.rglob("*"))
    assert {p.name for p in written} >= {"library.sqlite", "masters"}
    assert any(p.suffix == ".fits" for p in written)
    modes = {str(p.relative_to(data)): stat.S_IMODE(p.stat().st_mode) for p in written}
    expected = {name: (0o777 & ~umask if (data / name).is_dir() else file_mode) for name in modes}
    assert modes == expected


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["plan", "examples/night.yaml", "--plot", "{dir}"], "is a folder"),
        (["capture", "--type", "dark", "--exposure", "1", "--out", "{file}"], "is a file"),
    ],
)
def test_an_output_of_the_wrong_kind_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], kind: str
) -> None:
    monkeypatch.chdir(REPO)
    (tmp_path / "plots").mkdir()
    (tmp_path / "frames.txt").write_text("not a folder")
    given = [a.format(dir=tmp_path / "plots", file=tmp_path / "frames.txt") for a in argv]
    assert main(given) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and kind in err and "Traceback" not in err
