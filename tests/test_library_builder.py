"""Master automation end to end, and crash safety with real processes killed by SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from library_fixtures import ekos_header, nina_header, sharpcap_header, write_series

from agent.library.builder import BuildRunner, drain, masters_of_jobs, schedule, sweep
from agent.library.keys import FrameType, LibraryPolicy
from agent.library.needs import needs
from agent.library.store import Library

MIN5 = LibraryPolicy(
    min_frames={FrameType.BIAS: 5, FrameType.DARK: 5, FrameType.DARKFLAT: 5, FrameType.FLAT: 5}
)
TESTS = Path(__file__).parent

def _mixed_folder(root: Path) -> None:
    write_series(root / "nina" / "darks", "dark", [nina_header("dark", 60) for _ in range(5)], level=1010)
    write_series(
        root / "nina" / "darkflats", "df", [nina_header("darkflat", 2.0) for _ in range(5)], level=1002
    )
    write_series(
        root / "nina" / "flats", "flat", [nina_header("flat", 2.0, filt="L") for _ in range(5)], level=20000
    )
    write_series(root / "nina" / "lights", "light", [nina_header("light", 60, filt="L") for _ in range(3)])
    cam = "ZWO ASI294MC Pro"
    biases = [ekos_header("bias", 0.0, camera=cam, ccd_temp=-10.2) for _ in range(5)]
    flats = [ekos_header("flat", 3.3, filt="Ha", camera=cam, ccd_temp=-10.2) for _ in range(5)]
    write_series(root / "ekos", "bias", biases, level=1000)
    write_series(root / "ekos", "flatHa", flats, level=15000)
    write_series(root / "sharpcap" / "Darks", "cap", [sharpcap_header(2.0) for _ in range(2)])


def _run(code: str, root: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=root, env=env)


def _wait_for(marker: Path, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, f"helper process exited early with {proc.returncode}"
        assert time.monotonic() < end, "helper process never reached the kill point"
        time.sleep(0.05)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def test_mixed_folder_builds_exactly_the_expected_masters_flats_after_dark_flats(tmp_path: Path) -> None:
    _mixed_folder(tmp_path / "in")
    with Library(tmp_path / "data") as lib:
        lib.ingest_paths([tmp_path / "in"])
        schedule(lib, MIN5)
        drain(lib, MIN5)
        masters = {(m.key.frame_type.value, m.key.filter): m for m in lib.masters()}
        expected = {("bias", None), ("dark", None), ("darkflat", None), ("flat", "L"), ("flat", "Ha")}
        assert set(masters) == expected
        for m in masters.values():
            assert Path(m.path).is_file() and m.n_sources == 5
        dark = masters[("dark", None)]
        assert dark.key.exposure_key == 60.0 and dark.key.offset == 30.0
        linked = lib.conn.execute("SELECT COUNT(*) FROM frames WHERE master_id = ?", (dark.id,)).fetchone()[0]
        assert linked == 5
        flat_l, flat_ha = masters[("flat", "L")], masters[("flat", "Ha")]
        assert flat_l.stats["darkflat_id"] == masters[("darkflat", None)].id
        assert flat_l.id > masters[("darkflat", None)].id  # flats only after their dark flats
        assert flat_ha.stats["bias_id"] == masters[("bias", None)].id  # no dark flats at 3.3 s
        listed = needs(lib, MIN5)
        acc = [n for n in listed if n.kind == "accumulating"]
        assert [(n.key.camera, n.have, n.target) for n in acc] == [("ZWO ASI290MM Mini", 2, 5)]
        assert not [n for n in listed if n.kind == "missing"]

def test_new_master_supersedes_the_old_and_stales_lights_that_used_it(tmp_path: Path) -> None:
    write_series(
        tmp_path / "n1", "dark", [nina_header("dark", 60, when=time.time() - 86400) for _ in range(5)]
    )
    with Library(tmp_path / "data") as lib:
        lib.ingest_paths([tmp_path / "n1"])
        schedule(lib, MIN5)
        drain(lib, MIN5)
        (first,) = lib.masters()
        light = write_series(tmp_path / "l", "light", [nina_header("light", 60, filt="L")])[0]
        light_id = lib.ingest_file(light).frame_id
        assert light_id is not None
        lib.record_light_calibration(light_id, status="calibrated", masters_used={"dark": first.id})
        # The next night adds frames (a little warmer, inside the band) until the next master.
        write_series(tmp_path / "n2", "dark", [nina_header("dark", 60, set_temp=-9.5) for _ in range(5)])
        lib.ingest_paths([tmp_path / "n2"])
        schedule(lib, MIN5)
        drain(lib, MIN5)
        old, new = lib.masters()
        assert old.superseded_by == new.id and new.superseded_by is None
        assert [m.id for m in lib.masters(current_only=True)] == [new.id]
        (row,) = lib.lights()
        assert row["status"] == "stale"


@pytest.mark.parametrize("kill_point", ["stacking", "file written, row not committed"])
def test_kill_during_build_leaves_nothing_half_registered_and_sweep_finishes(
    tmp_path: Path, kill_point: str
) -> None:
    write_series(tmp_path / "in", "dark", [nina_header("dark", 30) for _ in range(5)])
    data = tmp_path / "data"
    with Library(data) as lib:
        lib.ingest_paths([tmp_path / "in"])
    marker = tmp_path / "marker"
    hook = "register_master" if kill_point.startswith("file") else "load_recipe"
    proc = _run(
        f"""
        import time
        from pathlib import Path
        from agent.library import build_job, builder
        from agent.library.store import Library
        from test_library_builder import MIN5

        def stop_here(*args, **kwargs):
            Path({str(marker)!r}).write_text("at kill point")
            time.sleep(600)

        setattr(build_job, {hook!r}, stop_here)
        lib = Library(Path({str(data)!r}))
        builder.schedule(lib, MIN5)
        builder.drain(lib, MIN5)
        """,
        tmp_path,
    )
    _wait_for(marker, proc)
    _kill(proc)
    with Library(data) as lib:
        assert lib.masters() == []
        assert len(lib.frames(state="accumulating")) == 5
        (job,) = lib.conn.execute("SELECT state, attempts FROM jobs").fetchall()
        assert (job["state"], job["attempts"]) == ("running", 1)
        report = sweep(lib, MIN5)  # restart: recovers the job and runs it in a worker process
        assert report.jobs_recovered == 1 and len(report.jobs_done) == 1
        (master,) = lib.masters()
        assert master.n_sources == 5 and Path(master.path).is_file()
        assert report.masters_built == [master.id]
        assert len(lib.frames(state="in_master")) == 5
        assert lib.conn.execute("SELECT state, attempts FROM jobs").fetchone()[:] == ("done", 2)
        leftovers = [p.name for p in lib.masters_dir.rglob("*") if p.is_file() and p.name.startswith(".")]
        assert leftovers == []


def test_kill_during_ingest_loses_no_frame_and_rerun_completes(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "in", "dark", [nina_header("dark", 30) for _ in range(12)])
    data = tmp_path / "data"
    marker = tmp_path / "marker"
    proc = _run(
        f"""
        import time
        from pathlib import Path
        from agent.library import ingest
        from agent.library.store import Library

        real = ingest.insert_frame
        calls = []

        def insert_then_stop(*args, **kwargs):
            calls.append(1)
            row = real(*args, **kwargs)
            if len(calls) == 5:  # inside the fifth frame's transaction, before its commit
                Path({str(marker)!r}).write_text("at kill point")
                time.sleep(600)
            return row

        ingest.insert_frame = insert_then_stop
        Library(Path({str(data)!r})).ingest_paths([{str(tmp_path / "in")!r}])
        """,
        tmp_path,
    )
    _wait_for(marker, proc)
    _kill(proc)
    with Library(data) as lib:
        assert lib.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert len(lib.frames()) == 4
        statuses = [r.status for r in lib.ingest_paths([tmp_path / "in"])]
        assert statuses.count("unchanged") == 4 and statuses.count("added") == 8
        assert sorted(str(f["path"]) for f in lib.frames()) == sorted(str(p.resolve()) for p in paths)


def test_kill_between_capture_file_and_row_is_recovered_by_sweep(tmp_path: Path) -> None:
    data = tmp_path / "data"
    marker = tmp_path / "marker"
    proc = _run(
        f"""
        import time
        import numpy as np
        from pathlib import Path
        from agent.library.store import Library
        from library_fixtures import nina_header

        def stop_here(self, *args, **kwargs):
            Path({str(marker)!r}).write_text("file written")
            time.sleep(600)

        Library.ingest_file = stop_here
        Library(Path({str(data)!r})).add_frame(np.zeros((24, 32), np.uint16), nina_header("bias", 0.0), "b.fits")
        """,
        tmp_path,
    )
    _wait_for(marker, proc)
    _kill(proc)
    with Library(data) as lib:
        assert lib.frames() == []
        report = sweep(lib, MIN5, build=False)
        assert report.orphans_ingested == 1
        (frame,) = lib.frames()
        assert frame["frame_type"] == "bias" and frame["state"] == "accumulating"


def test_failed_build_is_recorded_and_not_retried_until_asked(tmp_path: Path) -> None:
    write_series(tmp_path / "in", "dark", [nina_header("dark", 30) for _ in range(5)])
    with Library(tmp_path / "data") as lib:
        lib.ingest_paths([tmp_path / "in"])
        for f in lib.frames():
            Path(str(f["path"])).write_bytes(b"gone bad")  # frames damaged after ingest
        schedule(lib, MIN5)
        drain(lib, MIN5)
        (job,) = lib.conn.execute("SELECT state, reason FROM jobs").fetchall()
        assert job["state"] == "failed" and job["reason"]
        assert lib.masters() == [] and len(lib.frames(state="accumulating")) == 5
        new, waiting = schedule(lib, MIN5)
        assert new == [] and "failed" in waiting[0].reason
        assert json.loads(json.dumps(waiting[0].key.as_dict()))["frame_type"] == "dark"


def test_runner_and_drain_tell_which_masters_were_registered(tmp_path: Path) -> None:
    """The library queues nothing for upload itself: callers learn the new masters and do."""
    write_series(tmp_path / "darks", "dark", [nina_header("dark", 30) for _ in range(5)])
    write_series(tmp_path / "biases", "bias", [nina_header("bias", 0.0) for _ in range(5)])
    with Library(tmp_path / "data") as lib:
        lib.ingest_paths([tmp_path / "darks"])
        runner = BuildRunner(lib, MIN5)
        assert runner.new_masters() == []
        schedule(lib, MIN5)
        runner.wait()  # built in the worker process, read back from the database
        (dark,) = lib.masters()
        assert runner.new_masters() == [dark.id]
        assert runner.new_masters() == []  # each master is told once
        lib.ingest_paths([tmp_path / "biases"])
        jobs = drain(lib, MIN5)  # built here, outside the runner
        built = masters_of_jobs(lib, jobs)
        assert built == [m.id for m in lib.masters(frame_type=FrameType.BIAS)] and len(built) == 1
        assert runner.new_masters() == built


def test_the_sequence_files_stacking_settings_reach_the_masters(tmp_path: Path) -> None:
    """`stacking: {rejection: none}` builds an unclipped mean; the default picks a rejection."""
    from dataclasses import replace

    for name, stacking in (("auto", ()), ("none", (("rejection", "none"),))):
        root = tmp_path / name
        write_series(root / "darks", "dark", [nina_header("dark", 30) for _ in range(5)])
        with Library(root / "data") as lib:
            lib.ingest_paths([root / "darks"])
            policy = replace(MIN5, stacking=stacking)
            drain(lib, policy)
            (dark,) = lib.masters()
            method = dark.as_dict()["method"]
            if name == "none":
                assert method == "none", method
            else:
                assert method != "none", method
