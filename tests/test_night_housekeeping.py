"""The data disk during a simulated night: a full one holds capture with a message until space
returns; one that vanishes (a USB disk pulled) stops the night safely and is never made again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.sim_fixtures import needs_indiserver
from tests.test_agent_night import (
    NIGHT,
    assert_night_complete,
    library,
    night_runner,
    start_sim,
    write_sequence,
)

pytestmark = [pytest.mark.indi, needs_indiserver]


@contextmanager
def small_disk(where: Path, size_mb: int) -> Iterator[Path]:
    """A real file system of `size_mb` (tmpfs), so the disk really fills."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _notes(data: Path) -> list[str]:
    try:
        progress = json.loads((data / "nights" / f"{NIGHT}.json").read_text())
    except (OSError, ValueError):
        return []
    return [str(e["text"]) for e in progress["events"]]


def test_a_full_disk_holds_capture_until_space_returns_and_the_night_completes(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    seq_path = write_sequence(tmp_path)
    raw = yaml.safe_load(seq_path.read_text())
    raw["housekeeping"] = {"min_free_mb": 2}
    seq_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with small_disk(tmp_path / "disk", 40) as disk:
        filler = disk / "someone-elses-videos.bin"
        with filler.open("wb") as fh:  # leave about 5 MB: the first darks fit, then the disk is full
            fh.write(b"\0" * (int(shutil.disk_usage(disk).free) - 5 * 2**20))
        data = disk / "data"
        server = start_sim(sim_server, seq_path)
        runner = night_runner(seq_path, server, data)
        results: list[object] = []
        worker = threading.Thread(target=lambda: results.append(runner.run()), daemon=True)  # type: ignore[attr-defined]
        worker.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any(n.startswith("disk low") for n in _notes(data)):
            assert worker.is_alive(), "the night ended instead of waiting for space"
            time.sleep(0.1)
        assert any(n.startswith("disk low") for n in _notes(data)), "the full disk is said plainly"
        held_at = len(list((data / "frames").rglob("*.fits")))
        time.sleep(2.0)  # a few simulated hours: nothing more is captured while the disk is full
        assert len(list((data / "frames").rglob("*.fits"))) == held_at
        filler.unlink()  # the user makes room
        worker.join(timeout=600)
        assert not worker.is_alive()
        result = results[0]
        assert result.final_state == "done", result  # type: ignore[attr-defined]
        notes = " ".join(_notes(data))
        assert "AttributeError" not in notes and "failed" not in notes, notes
        assert_night_complete(data)


def test_a_pulled_data_disk_stops_the_night_safely_and_is_not_made_again(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    from agent.devices import IndiClient

    seq_path = write_sequence(tmp_path)
    data = tmp_path / "usb" / "obsagent"
    server = start_sim(sim_server, seq_path)
    runner = night_runner(seq_path, server, data)
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(runner.run()), daemon=True)  # type: ignore[attr-defined]
    worker.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list((data / "frames").rglob("light_*.fits"))) < 2:
        time.sleep(0.05)
    pulled = tmp_path / "usb-in-a-drawer"
    os.rename(tmp_path / "usb", pulled)  # the disk is gone from its mount point
    worker.join(timeout=120)
    assert not worker.is_alive()
    result = results[0]
    assert result.aborted and "data folder" in str(result.reason), result  # type: ignore[attr-defined]
    assert not (tmp_path / "usb").exists(), "the data folder is not made again on the system disk"
    client = IndiClient("127.0.0.1", server.port)  # type: ignore[attr-defined]
    client.connect()
    try:
        client.wait_property("Sim FlatPanel", "CAP_PARK", timeout=10)
        assert client.get("Sim FlatPanel", "CAP_PARK").values.get("PARK"), "the cap is closed"
        assert client.get("Sim Camera", "CCD_EXPOSURE").state != "Busy", "no exposure left running"
    finally:
        client.disconnect()
    # nothing written before the disk went was lost: every frame has its row, no half-written file
    files = sorted(p.relative_to(pulled / "obsagent").as_posix() for p in (pulled / "obsagent" / "frames").rglob("*"))
    assert not [f for f in files if f.endswith(".part")]
    with library(pulled / "obsagent") as conn:
        rows = sorted(r[0] for r in conn.execute("SELECT path FROM frames"))
    stored = sorted(f for f in files if f.endswith(".fits"))
    assert set(rows) <= set(stored), "every row's frame is on the disk"
    from agent.fitsfile import read_image

    for orphan in set(stored) - set(rows):  # written as the disk went: whole, ingested at the next start
        assert read_image(pulled / "obsagent" / orphan).data.size > 0


def test_a_low_disk_is_made_room_on_with_raw_frames_whose_masters_are_safe_upstream(
    sim_server: Callable[..., object], tmp_path: Path
) -> None:
    from agent.commands.run import start_uploads
    from agent.library.store import Library
    from agent.sync.worker import SyncWorker
    from tests.sync_fixtures import SyncLibrary

    remote = tmp_path / "nas"
    remote.mkdir()
    seq_path = write_sequence(tmp_path)
    raw = yaml.safe_load(seq_path.read_text())
    raw["housekeeping"] = {"min_free_mb": 2, "prune_synced": True}
    raw["sync"] = {"url": remote.as_uri()}
    seq_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with small_disk(tmp_path / "disk", 80) as disk:
        data = disk / "data"
        earlier = SyncLibrary(data, Library(data), shape=(1024, 1024))  # 2 MB a raw frame
        try:  # earlier nights: darks of 60 s and 90 s, their masters uploaded and verified
            safe = earlier.build_masters(exposures=(60.0, 90.0), n=8, age_days=20)
            assert SyncWorker(data, str(remote)).run_once().ok
            sources = [earlier.lib.on_disk(r[0]) for r in earlier.lib.conn.execute("SELECT path FROM frames")]
            masters = [Path(m.path) for m in earlier.lib.masters()]
        finally:
            earlier.lib.close()
        assert len(safe) == 2 and len(sources) == 16
        filler = disk / "someone-elses-videos.bin"
        with filler.open("wb") as fh:  # leave about 5 MB: the disk fills early in the night
            fh.write(b"\0" * (int(shutil.disk_usage(disk).free) - 5 * 2**20))
        server = start_sim(sim_server, seq_path)
        runner = night_runner(seq_path, server, data)
        runner.uploads = start_uploads  # type: ignore[attr-defined]  # as `run` and `serve` give it
        result = runner.run_in_thread()  # type: ignore[attr-defined]
        assert result.final_state == "done", result
        notes = _notes(data)
        assert any(n.startswith("disk low: removed") for n in notes), notes
        assert not any("MB free" in n for n in notes), "room was made: capture never held for a person"
        assert any(not p.exists() for p in sources), "raw frames of masters safe upstream made the room"
        assert all(p.exists() for p in masters), "the masters themselves stay"
        assert filler.exists(), "nothing but those raw frames is touched"
        with library(data) as conn:  # the night's own work is whole (the earlier masters are there too)
            lights = [r[0] for r in conn.execute("SELECT status FROM lights")]
        assert len(lights) == 3 * (3 + 2) and set(lights) == {"calibrated"}, lights
