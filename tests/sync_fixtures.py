"""Fixtures for the sync tests: a library with real master rows, a loopback OpenSSH server,
a loopback S3-compatible server (moto), and a fake disk budget for retention.

Masters are made through the library's own code (ingest, `builder.schedule`, `run_job`)
with a small mean-combine recipe, so the rows, sources and supersession are the library's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


# masters through the library -----------------------------------------------------------------


@dataclass
class MeanMaster:
    data: np.ndarray
    header: fits.Header

    def write(self, path: str | os.PathLike[str]) -> Path:
        from agent.fitsfile import write_fits_atomic

        return write_fits_atomic(path, self.data, self.header)


def mean_recipe(kind: Any, paths: list[str], *, darkflat: str | None, bias: str | None, header: fits.Header) -> MeanMaster:
    """A plain mean: enough for sync tests, which care about files and rows, not pixels."""
    from agent.fitsfile import read_fits

    stack = np.stack([read_fits(p)[0].astype(np.float32) for p in paths])
    h = header.copy()
    h["COMBINE"] = "mean"
    return MeanMaster(stack.mean(axis=0).astype(np.float32), h)


@dataclass
class MeanMasterWithDefects(MeanMaster):
    """A master written as the library's recipes write theirs: the product and its defect map beside it."""

    def write(self, path: str | os.PathLike[str]) -> Path:
        from agent.stacking import products

        target = products.write_product(path, self.data, self.header)
        defects = np.zeros(self.data.shape, np.uint8)
        defects[1, 2] = 1  # one hot pixel
        products.write_defects(target, defects, self.header)
        return target


def mean_recipe_with_defects(kind: Any, paths: list[str], *, darkflat: str | None, bias: str | None,
                             header: fits.Header) -> MeanMasterWithDefects:  # fmt: skip
    """The plain mean, with a defect map beside the master (SRCHASH and DATE tie them together)."""
    import datetime as dt
    import hashlib

    mean = mean_recipe(kind, paths, darkflat=darkflat, bias=bias, header=header)
    mean.header["SRCHASH"] = hashlib.sha256("\n".join(paths).encode()).hexdigest()
    mean.header["DATE"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return MeanMasterWithDefects(mean.data, mean.header)


@dataclass
class SyncLibrary:
    data: Path
    lib: Any
    batches: int = 0
    shape: tuple[int, int] = (24, 32)
    master_ids: list[int] = field(default_factory=list)
    recipe: str = "tests.sync_fixtures:mean_recipe"

    def build_masters(self, exposures: tuple[float, ...] = (10.0, 20.0, 30.0), n: int = 3, age_days: float = 1.0) -> list[int]:
        """Capture `n` darks per exposure under the data directory and build their masters."""
        from agent.fitsfile import write_fits_atomic
        from agent.library import builder
        from agent.library.keys import FrameType, LibraryPolicy
        from agent.sync.manifest import library_manifest
        from agent.sync.outbox import enqueue_master
        from tests.library_fixtures import nina_header

        self.batches += 1
        when = time.time() - age_days * 86400.0
        folder = self.data / "frames" / f"batch{self.batches}"
        for exp in exposures:
            for i in range(n):
                h = nina_header("dark", exp, when=when + i)
                path = folder / f"dark_{exp:g}s_{i:03d}.fits"
                rng = np.random.default_rng(hash((self.batches, exp, i)) & 0xFFFF)
                data = np.clip(rng.normal(1000 + exp, 5.0, self.shape), 0, 65535).astype(np.uint16)
                write_fits_atomic(path, data, h)
        self.lib.ingest_paths([folder])
        policy = LibraryPolicy(min_frames={t: n for t in (FrameType.DARK, FrameType.BIAS, FrameType.FLAT, FrameType.DARKFLAT)})
        jobs, _ = builder.schedule(self.lib, policy)
        made = []
        for job in jobs:
            master_id = builder.run_job(self.lib, job, recipe=self.recipe)
            assert master_id is not None, self.lib.conn.execute("SELECT reason FROM jobs WHERE id = ?", (job,)).fetchone()[0]
            # as the library's callers do: queue each master as soon as it is registered
            enqueue_master(self.lib.conn, self.lib.master(master_id).path, library_manifest(self.lib.conn, master_id))
            made.append(master_id)
        self.master_ids += made
        return made

    @property
    def db(self) -> Path:
        return Path(self.lib.db_path)


@pytest.fixture
def sync_library(tmp_path: Path) -> Iterator[SyncLibrary]:
    from agent.library.store import Library

    data = tmp_path / "data"
    lib = Library(data)
    try:
        yield SyncLibrary(data, lib)
    finally:
        lib.close()


# OpenSSH on loopback -------------------------------------------------------------------------


@dataclass
class SshServer:
    folder: Path
    port: int
    key: Path
    known_hosts: Path
    config: Path
    proc: subprocess.Popen[bytes] | None = None

    def url(self, path: Path, password: str | None = None) -> str:
        user = os.environ.get("USER") or __import__("getpass").getuser()
        auth = f"{user}:{password}" if password else user
        return f"sftp://{auth}@127.0.0.1:{self.port}{path}?key={self.key}&known_hosts={self.known_hosts}&timeout=5"

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        assert SSHD is not None
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config), "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "sshd.log", "ab"),  # noqa: SIM115 - kept for the server's life
        )
        wait_port(self.port)

    def stop(self) -> None:
        """Stop the listener and every session it forked, like a server going away."""
        if self.proc is None:
            return
        for pid in _descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    if SSHD is None:
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server)")
    folder = tmp_path / "sshd"
    folder.mkdir()
    keygen = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
    for name in ("host", "client"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client.pub").read_text())
    port = free_port()
    host_pub = (folder / "host.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nHostKey {folder / 'host'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    server = SshServer(folder, port, folder / "client", folder / "known_hosts", config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# S3-compatible server (moto) on loopback -------------------------------------------------------


@dataclass
class S3Server:
    endpoint: str
    bucket: str

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}?endpoint_url={self.endpoint}&region=us-east-1"


@pytest.fixture
def s3_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    moto_server = Path(sys.executable).parent / "moto_server"
    if not moto_server.exists():
        pytest.skip("moto[server] not installed: S3 target untested here")
    pytest.importorskip("s3fs")
    port = free_port()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    proc = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "moto.log", "ab"),  # noqa: SIM115 - kept for the server's life
    )
    try:
        wait_port(port, 30)
        endpoint = f"http://127.0.0.1:{port}"
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
        fs.mkdir("masters-bucket")
        yield S3Server(endpoint, "masters-bucket")
    finally:
        proc.terminate()
        proc.wait(10)


# a fake disk budget ---------------------------------------------------------------------------


@dataclass
class FakeDisk:
    """A file system of `capacity` bytes whose used space is the files under `root`."""

    root: Path
    capacity: int

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def __call__(self, path: Path) -> Any:
        used = self.used()
        return shutil._ntuple_diskusage(self.capacity, used, self.capacity - used)
