"""The outbox inside the library database: queueing, catch-up after a crash, supersession, status."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agent.library.migrations import current_version as library_version
from agent.sync import schema
from agent.sync.outbox import enqueue_master, mark_superseded, outbox_status, sweep_unqueued
from agent.sync.targets import SyncError, redact_url
from tests.sync_fixtures import SyncLibrary


def test_sync_schema_lives_beside_the_library_schema(sync_library: SyncLibrary) -> None:
    conn = sqlite3.connect(sync_library.db)
    before = library_version(conn)
    assert schema.ensure_schema(conn) == schema.MIGRATIONS[-1][0]
    assert schema.ensure_schema(conn) == schema.MIGRATIONS[-1][0]  # idempotent
    assert library_version(conn) == before
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sync_schema_version", "sync_outbox", "sync_deliveries", "masters", "frames"} <= tables


def test_a_master_is_queued_once_with_a_full_manifest(sync_library: SyncLibrary) -> None:
    [master_id] = sync_library.build_masters(exposures=(10.0,))
    path = Path(sync_library.lib.master(master_id).path)
    from agent.sync.manifest import file_sha256, library_manifest

    manifest = library_manifest(sync_library.lib.conn, master_id)
    first = enqueue_master(sync_library.lib.conn, path, manifest)
    again = enqueue_master(sync_library.db, path, manifest)
    assert first == again
    row = sync_library.lib.conn.execute("SELECT manifest, master_id FROM sync_outbox").fetchall()
    assert len(row) == 1 and row[0][1] == master_id
    m = json.loads(row[0][0])
    assert m["checksum"]["sha256"] == file_sha256(path)
    assert m["size"] == path.stat().st_size
    assert m["superseded"] is False
    assert m["configuration"]["frame_type"] == "dark" and m["configuration"]["exposure_key"] == 10.0
    assert len(m["sources"]) == 3 and all(len(s["sha256"]) == 64 for s in m["sources"])
    assert m["file"]["remote"] == f"masters/{m['checksum']['sha256'][:2]}/{m['checksum']['sha256']}.fits"


def test_a_manifest_that_disagrees_with_the_file_is_refused(sync_library: SyncLibrary) -> None:
    [master_id] = sync_library.build_masters(exposures=(10.0,))
    path = sync_library.lib.master(master_id).path
    with pytest.raises(SyncError, match="differs from its manifest"):
        enqueue_master(sync_library.db, path, {"checksum": {"sha256": "0" * 64}})


def forget_queued(sync_library: SyncLibrary, ids: list[int]) -> None:
    """What a crash between registering a master and queueing it leaves: a master with no outbox row."""
    marks = ",".join("?" * len(ids))
    with sync_library.lib.transaction() as c:
        c.execute(f"DELETE FROM sync_outbox WHERE master_id IN ({marks})", ids)


def test_builder_queues_each_new_master_at_once(sync_library: SyncLibrary) -> None:
    ids = sync_library.build_masters(exposures=(10.0, 20.0))
    queued = {r[0] for r in sync_library.lib.conn.execute("SELECT master_id FROM sync_outbox")}
    assert queued == set(ids)
    assert sweep_unqueued(sync_library.db).enqueued == []


def test_sweep_queues_masters_a_crash_left_out_and_follows_supersession(sync_library: SyncLibrary) -> None:
    old = sync_library.build_masters(exposures=(10.0, 20.0))
    forget_queued(sync_library, old)
    result = sweep_unqueued(sync_library.db)
    assert len(result.enqueued) == 2
    assert sweep_unqueued(sync_library.db).enqueued == []
    new = sync_library.build_masters(exposures=(10.0,))  # replaces the 10 s master
    forget_queued(sync_library, new)
    assert sync_library.lib.master(old[0]).superseded_by == new[0]
    result = sweep_unqueued(sync_library.db)
    assert len(result.enqueued) == 1 and len(result.superseded) == 1
    rows = dict(sync_library.lib.conn.execute("SELECT master_id, manifest FROM sync_outbox").fetchall())
    flagged = json.loads(rows[old[0]])
    assert flagged["superseded"] is True
    assert flagged["superseded_by"] == json.loads(rows[new[0]])["checksum"]["sha256"]
    assert json.loads(rows[old[1]])["superseded"] is False
    assert mark_superseded(sync_library.db, old[0], new[0]) is False  # already flagged


def test_status_counts_queue_and_hides_passwords(sync_library: SyncLibrary) -> None:
    forget_queued(sync_library, sync_library.build_masters(exposures=(10.0, 20.0)))
    status = outbox_status(sync_library.db, "sftp://obs:hunter2@nas.local/srv/masters")
    assert status["queued"] == 0 and status["not_yet_queued"] == 2
    sweep_unqueued(sync_library.db)
    status = outbox_status(sync_library.db, "sftp://obs:hunter2@nas.local/srv/masters")
    assert status["queued"] == 2
    [(name, target)] = status["targets"].items()
    assert "hunter2" not in json.dumps(status) and name == "sftp://obs:***@nas.local/srv/masters"
    assert target["pending"] == 2 and target["confirmed"] == 0


def test_redaction_covers_passwords_and_secret_parameters() -> None:
    assert redact_url("sftp://u:p%40ss@h:2222/x?key=/k") == "sftp://u:***@h:2222/x?key=/k"
    assert "s3cr3t" not in redact_url("s3://b/p?secret=s3cr3t&profile=nas")
    assert redact_url("/mnt/nas") == "/mnt/nas"
