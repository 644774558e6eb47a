"""Masters arrive upstream once, with matching checksums: directory, SFTP on loopback, S3 (moto)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from agent.sync.outbox import RetryPolicy, outbox_status
from agent.sync.targets import SyncError, open_target
from agent.sync.worker import SyncWorker
from tests.sync_fixtures import S3Server, SshServer, SyncLibrary

FAST = RetryPolicy(base_s=0.05, max_s=0.2)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def remote_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_arrived_once(sync_library: SyncLibrary, root: Path) -> None:
    """Every library master is under its content address exactly once, bytes identical,
    with its defect map beside it when it has one and its manifest; nothing else (no temporary
    file) is left."""
    masters = [Path(m.path) for m in sync_library.lib.masters()]
    files = remote_files(root)
    expected = set()
    for m in masters:
        digest = sha(m)
        fits_file = root / "masters" / digest[:2] / f"{digest}.fits"
        assert fits_file.read_bytes() == m.read_bytes()
        manifest = json.loads((fits_file.with_suffix(".json")).read_text())
        assert manifest["checksum"]["sha256"] == digest and manifest["size"] == m.stat().st_size
        expected |= {fits_file, fits_file.with_suffix(".json")}
        local_map = m.with_name(f"{m.stem}.defects.fits")
        if local_map.exists():
            remote_map = fits_file.with_name(f"{digest}.defects.fits")
            assert remote_map.read_bytes() == local_map.read_bytes()
            assert manifest["defects"]["sha256"] == sha(local_map)
            assert manifest["defects"]["remote"] == remote_map.relative_to(root).as_posix()
            expected.add(remote_map)
        else:
            assert manifest["defects"] is None
    assert set(files) == expected, [p.name for p in files]


def test_directory_target_receives_every_master_once(sync_library: SyncLibrary, tmp_path: Path) -> None:
    sync_library.build_masters()
    remote = tmp_path / "nas"
    remote.mkdir()
    worker = SyncWorker(sync_library.data, str(remote), retry=FAST)
    report = worker.run_once()
    assert len(report.uploaded) == 3 and report.ok
    assert_arrived_once(sync_library, remote)
    again = worker.run_once(ignore_backoff=True)
    assert again.uploaded == [] and again.bytes_sent == 0
    status = outbox_status(sync_library.db, str(remote))
    assert status["targets"][str(remote)]["confirmed"] == 3 and status["targets"][str(remote)]["pending"] == 0


def test_supersession_rewrites_the_remote_manifest_and_keeps_the_old_master(
    sync_library: SyncLibrary, tmp_path: Path
) -> None:
    [old] = sync_library.build_masters(exposures=(10.0,))
    remote = tmp_path / "nas"
    remote.mkdir()
    worker = SyncWorker(sync_library.data, str(remote), retry=FAST)
    worker.run_once()
    [new] = sync_library.build_masters(exposures=(10.0,))
    report = worker.run_once()
    assert len(report.uploaded) == 1 and len(report.manifests_updated) == 1
    old_sha = sha(Path(sync_library.lib.master(old).path))
    old_manifest = json.loads((remote / "masters" / old_sha[:2] / f"{old_sha}.json").read_text())
    assert old_manifest["superseded"] is True
    assert old_manifest["superseded_by"] == sha(Path(sync_library.lib.master(new).path))
    assert (remote / "masters" / old_sha[:2] / f"{old_sha}.fits").exists()  # never deleted remotely
    assert_arrived_once(sync_library, remote)


def test_a_missing_directory_is_a_retry_not_a_loss(sync_library: SyncLibrary, tmp_path: Path) -> None:
    sync_library.build_masters(exposures=(10.0,))
    remote = tmp_path / "usb"
    worker = SyncWorker(sync_library.data, str(remote), retry=FAST)
    report = worker.run_once()
    assert report.unreachable and "mount it or create it" in report.unreachable
    remote.mkdir()
    assert worker.run_once(ignore_backoff=True).ok
    assert_arrived_once(sync_library, remote)


def test_sftp_target_receives_every_master_once(sync_library: SyncLibrary, sshd: SshServer, tmp_path: Path) -> None:
    sync_library.build_masters()
    remote = tmp_path / "upstream"
    remote.mkdir()
    worker = SyncWorker(sync_library.data, sshd.url(remote), retry=FAST)
    report = worker.run_once()
    assert len(report.uploaded) == 3 and report.ok, report.as_dict()
    assert_arrived_once(sync_library, remote)
    assert worker.run_once(ignore_backoff=True).bytes_sent == 0
    worker.target.close()


def test_sftp_refuses_an_unknown_host_key(sync_library: SyncLibrary, sshd: SshServer, tmp_path: Path) -> None:
    sync_library.build_masters(exposures=(10.0,))
    (tmp_path / "empty_known_hosts").write_text("")
    url = sshd.url(tmp_path).replace(str(sshd.known_hosts), str(tmp_path / "empty_known_hosts"))
    report = SyncWorker(sync_library.data, url, retry=FAST).run_once()
    assert report.failed and "not in" in report.failed[0][1] and "ssh-keyscan" in report.failed[0][1]


def test_passwords_never_reach_logs_or_status(
    sync_library: SyncLibrary, sshd: SshServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sync_library.build_masters(exposures=(10.0,))
    url = sshd.url(tmp_path, password="s3cr3t-pw")
    caplog.set_level(logging.DEBUG)
    worker = SyncWorker(sync_library.data, url, retry=FAST)
    sent = worker.run_once()
    worker.target.close()
    sshd.stop()  # and once more with the link down, so the error path logs too
    sync_library.build_masters(exposures=(20.0,))
    failed = worker.run_once()
    assert sent.ok and failed.unreachable
    status = outbox_status(sync_library.db, url)
    text = caplog.text + json.dumps(status) + json.dumps([sent.as_dict(), failed.as_dict()]) + repr(worker.target.spec)
    assert "s3cr3t-pw" not in text
    assert ":***@" in worker.target_name and status["targets"][worker.target_name]["last_error"]


def test_s3_target_receives_every_master_once(sync_library: SyncLibrary, s3_server: S3Server) -> None:
    sync_library.build_masters()
    worker = SyncWorker(sync_library.data, s3_server.url("obs1"), retry=FAST)
    report = worker.run_once()
    assert len(report.uploaded) == 3 and report.ok, report.as_dict()
    fs = worker.target.fs
    names = sorted(fs.find(f"{s3_server.bucket}/obs1"))
    for m in sync_library.lib.masters():
        digest = sha(Path(m.path))
        key = f"{s3_server.bucket}/obs1/masters/{digest[:2]}/{digest}.fits"
        assert fs.cat_file(key) == Path(m.path).read_bytes()
        assert key in names and key.replace(".fits", ".json") in names
    assert len(names) == 6
    assert worker.run_once(ignore_backoff=True).bytes_sent == 0


def test_unknown_target_kinds_name_the_fix() -> None:
    with pytest.raises(SyncError, match="use a directory path, sftp:// or s3://"):
        open_target("ftp://host/x")
    with pytest.raises(SyncError, match="--target"):
        open_target("")
