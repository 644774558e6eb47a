"""Acceptance: the link goes down and comes back, and `obsagent sync` is killed with SIGKILL
mid-upload; every master still arrives exactly once and nothing partial is ever visible."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.sync.outbox import RetryPolicy, outbox_status
from agent.sync.worker import SyncWorker
from tests.sync_fixtures import SshServer, SyncLibrary
from tests.test_sync_targets import assert_arrived_once

OBSAGENT = Path(sys.executable).parent / "obsagent"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def visible_files_are_whole(root: Path) -> None:
    """Every master under a final (non-hidden) name is complete: its content hashes to its name
    (a defect map is checked against its master's manifest by `assert_arrived_once`)."""
    for p in root.rglob("*"):
        if p.is_file() and not p.name.startswith(".") and p.suffix == ".fits" and ".defects" not in p.suffixes:
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.stem, f"partial file visible: {p}"


def test_link_down_then_back_every_master_arrives(sync_library: SyncLibrary, sshd: SshServer, tmp_path: Path) -> None:
    remote = tmp_path / "upstream"
    remote.mkdir()
    sync_library.build_masters(exposures=(10.0,))
    worker = SyncWorker(sync_library.data, sshd.url(remote), retry=RetryPolicy(base_s=0.1, max_s=0.5), poll_s=0.2)
    name = worker.target_name
    worker.start()
    try:
        wait_for(lambda: outbox_status(sync_library.db, name)["targets"][name]["confirmed"] == 1, 20, "first master")
        sshd.stop()
        sync_library.build_masters(exposures=(20.0, 30.0))  # masters keep queuing while the link is down
        sync_library.build_masters(exposures=(40.0,))
        worker.wake()
        wait_for(lambda: outbox_status(sync_library.db, name)["targets"][name]["retrying"] >= 1, 20, "a failed try")
        time.sleep(1.0)  # several backoff rounds against a dead server
        status = outbox_status(sync_library.db, name)["targets"][name]
        assert status["confirmed"] == 1 and status["pending"] == 3 and status["last_error"]
        sshd.start()
        wait_for(lambda: outbox_status(sync_library.db, name)["targets"][name]["confirmed"] == 4, 30, "all masters")
    finally:
        worker.stop()
    assert_arrived_once(sync_library, remote)


@pytest.mark.parametrize("kind", ["directory", "sftp"])
def test_kill_9_during_upload_leaves_nothing_partial_and_no_duplicate(
    kind: str, sync_library: SyncLibrary, sshd: SshServer, tmp_path: Path
) -> None:
    sync_library.build_masters()
    remote = tmp_path / "upstream"
    remote.mkdir()
    target = str(remote) if kind == "directory" else sshd.url(remote)
    cmd = [str(OBSAGENT), "sync", "--once", "--data", str(sync_library.data), "--target", target]
    proc = subprocess.Popen([*cmd, "--bandwidth", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any(p.name.endswith(".part") for p in remote.rglob("*")), 30, "an upload in flight")
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    visible_files_are_whole(remote)
    assert any(p.name.endswith(".part") for p in remote.rglob("*")), "the kill should land mid-upload"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    visible_files_are_whole(remote)
    assert_arrived_once(sync_library, remote)  # also: no temporary file left behind
