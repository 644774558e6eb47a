"""Retention: raw frames go only once their master is confirmed upstream, by age or disk budget."""

from __future__ import annotations

from pathlib import Path

from agent.sync.retention import RetentionPolicy, prune_raw_frames
from agent.sync.worker import SyncWorker
from tests.sync_fixtures import FakeDisk, SyncLibrary


def sources(sync_library: SyncLibrary, master_id: int) -> list[Path]:
    rows = sync_library.lib.conn.execute(
        "SELECT f.path FROM master_sources ms JOIN frames f ON f.id = ms.frame_id WHERE ms.master_id = ?", (master_id,)
    )
    return [sync_library.lib.on_disk(r[0]) for r in rows]  # recorded relative to the data folder


def test_nearly_full_disk_frees_only_confirmed_masters_raw_frames(sync_library: SyncLibrary, tmp_path: Path) -> None:
    confirmed = sync_library.build_masters(exposures=(10.0, 20.0), age_days=3)
    remote = tmp_path / "nas"
    remote.mkdir()
    disk = FakeDisk(sync_library.data / "frames", capacity=0)
    disk.capacity = disk.used() + 10_000_000
    policy = RetentionPolicy(keep_free_bytes=disk.capacity)  # asks for more than can ever be freed
    before_sync = prune_raw_frames(sync_library.db, policy, disk_usage=disk)
    assert before_sync.pruned == [] and before_sync.held_unconfirmed == 6  # never before confirmation
    assert SyncWorker(sync_library.data, str(remote)).run_once().ok
    unconfirmed = sync_library.build_masters(exposures=(30.0,), age_days=5)  # older, but not yet upstream
    report = prune_raw_frames(sync_library.db, policy, disk_usage=disk)
    gone = {Path(p) for _, p, _ in report.pruned}
    assert gone == {p for m in confirmed for p in sources(sync_library, m)}
    assert all(not p.exists() for p in gone)
    assert all(p.exists() for p in sources(sync_library, unconfirmed[0]))
    assert all(Path(m.path).exists() for m in sync_library.lib.masters())  # masters themselves are kept
    assert report.freed_bytes == sum(size for _, _, size in report.pruned) > 0
    assert report.held_unconfirmed == 3 and report.short_bytes > 0


def test_a_small_shortfall_prunes_oldest_confirmed_frames_first(sync_library: SyncLibrary, tmp_path: Path) -> None:
    [old] = sync_library.build_masters(exposures=(10.0,), age_days=9)
    [new] = sync_library.build_masters(exposures=(20.0,), age_days=2)
    remote = tmp_path / "nas"
    remote.mkdir()
    assert SyncWorker(sync_library.data, str(remote)).run_once().ok
    disk = FakeDisk(sync_library.data / "frames", capacity=0)
    frame_size = sources(sync_library, old)[0].stat().st_size
    disk.capacity = disk.used() + 50_000
    report = prune_raw_frames(
        sync_library.db, RetentionPolicy(keep_free_bytes=50_000 + 2 * frame_size), disk_usage=disk
    )
    assert len(report.pruned) == 2 and report.short_bytes == 0
    assert {Path(p) for _, p, _ in report.pruned} <= set(sources(sync_library, old))
    assert all(p.exists() for p in sources(sync_library, new))


def test_age_policy_prunes_confirmed_frames_older_than_the_limit(sync_library: SyncLibrary, tmp_path: Path) -> None:
    [old] = sync_library.build_masters(exposures=(10.0,), age_days=40)
    [recent] = sync_library.build_masters(exposures=(20.0,), age_days=1)
    remote = tmp_path / "nas"
    remote.mkdir()
    policy = RetentionPolicy(max_age_days=30)
    assert prune_raw_frames(sync_library.db, policy).pruned == []
    assert SyncWorker(sync_library.data, str(remote)).run_once().ok
    dry = prune_raw_frames(sync_library.db, policy, dry_run=True)
    assert len(dry.pruned) == 3 and all(p.exists() for p in sources(sync_library, old))
    report = prune_raw_frames(sync_library.db, policy)
    assert {Path(p) for _, p, _ in report.pruned} == set(sources(sync_library, old))
    assert all(p.exists() for p in sources(sync_library, recent))
    assert prune_raw_frames(sync_library.db, policy).pruned == []  # recorded, not pruned twice
