"""A master's defect map (`<master>.defects.fits`) travels with it: uploaded beside it, read back
and checked against the manifest, to a directory, over SFTP to a real sshd and to S3 (moto)."""

from __future__ import annotations

import json
from pathlib import Path

from agent.stacking import products
from agent.sync.worker import SyncWorker
from tests.sync_fixtures import S3Server, SshServer, SyncLibrary
from tests.test_sync_targets import FAST, assert_arrived_once, sha

WITH_DEFECTS = "tests.sync_fixtures:mean_recipe_with_defects"


def masters_with_maps(sync_library: SyncLibrary, exposures: tuple[float, ...] = (10.0, 20.0)) -> list[Path]:
    sync_library.recipe = WITH_DEFECTS
    sync_library.build_masters(exposures=exposures)
    masters = [Path(m.path) for m in sync_library.lib.masters()]
    assert all(products.defects_file(m) is not None for m in masters)
    return masters


def test_directory_target_receives_each_master_with_its_defect_map(sync_library: SyncLibrary, tmp_path: Path) -> None:
    masters = masters_with_maps(sync_library)
    remote = tmp_path / "nas"
    remote.mkdir()
    worker = SyncWorker(sync_library.data, str(remote), retry=FAST)
    report = worker.run_once()
    assert len(report.uploaded) == 2 and report.ok, report.as_dict()
    assert_arrived_once(sync_library, remote)  # the maps too, byte for byte, named in the manifests
    for m in masters:
        digest = sha(m)
        arrived = remote / "masters" / digest[:2] / f"{digest}.fits"
        # downstream, the map is found beside the master by the same rule as here, and belongs to it
        assert products.defects_file(arrived) == arrived.with_name(f"{digest}.defects.fits")
    assert worker.run_once(ignore_backoff=True).bytes_sent == 0


def test_a_defect_map_changed_after_queueing_is_not_sent(sync_library: SyncLibrary, tmp_path: Path) -> None:
    [master] = masters_with_maps(sync_library, exposures=(10.0,))
    side = products.defects_path(master)
    side.write_bytes(side.read_bytes()[:-2880] + b"\0" * 2880)  # same size, other bytes
    remote = tmp_path / "nas"
    remote.mkdir()
    report = SyncWorker(sync_library.data, str(remote), retry=FAST).run_once()
    assert report.failed and "defect map changed after it was queued" in report.failed[0][1]
    names = [p.name for p in remote.rglob("*") if p.is_file()]
    assert not [n for n in names if n.endswith(".defects.fits") or n.endswith(".json")], names


def test_a_master_queued_without_a_map_has_none_in_its_manifest(sync_library: SyncLibrary, tmp_path: Path) -> None:
    sync_library.build_masters(exposures=(10.0,))  # the plain recipe writes no map
    remote = tmp_path / "nas"
    remote.mkdir()
    assert SyncWorker(sync_library.data, str(remote), retry=FAST).run_once().ok
    assert_arrived_once(sync_library, remote)
    [manifest] = [json.loads(p.read_text()) for p in remote.rglob("*.json")]
    assert manifest["defects"] is None


def test_sftp_target_receives_the_defect_maps(sync_library: SyncLibrary, sshd: SshServer, tmp_path: Path) -> None:
    masters_with_maps(sync_library)
    remote = tmp_path / "upstream"
    remote.mkdir()
    worker = SyncWorker(sync_library.data, sshd.url(remote), retry=FAST)
    report = worker.run_once()
    worker.target.close()
    assert len(report.uploaded) == 2 and report.ok, report.as_dict()
    assert_arrived_once(sync_library, remote)


def test_s3_target_receives_the_defect_maps(sync_library: SyncLibrary, s3_server: S3Server) -> None:
    masters = masters_with_maps(sync_library)
    worker = SyncWorker(sync_library.data, s3_server.url("obs1"), retry=FAST)
    report = worker.run_once()
    assert len(report.uploaded) == 2 and report.ok, report.as_dict()
    fs = worker.target.fs
    names = set(fs.find(f"{s3_server.bucket}/obs1"))
    for m in masters:
        digest = sha(m)
        key = f"{s3_server.bucket}/obs1/masters/{digest[:2]}/{digest}.defects.fits"
        assert key in names and fs.cat_file(key) == products.defects_path(m).read_bytes()
    assert len(names) == 3 * len(masters)
    assert worker.run_once(ignore_backoff=True).bytes_sent == 0
