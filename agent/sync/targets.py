"""Where masters go: a local or mounted directory, an SFTP server, or S3-compatible storage.

Every target speaks through an fsspec filesystem (imported lazily: `paramiko` for SFTP and
`s3fs` for S3 are optional extras). An upload is written under a hidden temporary name and
renamed, so a kill at any moment never leaves a partial file under the final name; S3 has
no rename, but an object only becomes visible when its PUT (or multipart upload) completes,
so S3 uploads go straight to the final key. Credentials come from the usual places (ssh
agent and keys, AWS environment and profiles) or the URL; they are never logged: every
name a target shows is the redacted URL.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from agent.errors import ObsAgentError

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
SECRET_PARAMS = re.compile(r"secret|password|passwd|token|key_?id|passphrase", re.IGNORECASE)
ENV_TARGET = "OBSAGENT_SYNC_TARGET"


class SyncError(ObsAgentError):
    """Syncing cannot go on as configured."""


class TargetUnreachable(SyncError):
    """The target could not be reached (link down, server stopped); retried later."""


class UploadStopped(SyncError):
    """The worker was asked to stop in the middle of an upload."""


def redact_url(url: str) -> str:
    """The URL with any password and secret-looking query values replaced by `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if sep else ''}@{hostport}"
    query = urlencode(
        [(k, "***" if SECRET_PARAMS.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*/:",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target URL. `secret` fields never appear in `name`."""

    scheme: str  # file | sftp | s3
    path: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, str] = field(default_factory=dict, repr=False)
    name: str = ""


def parse_target(url: str) -> TargetSpec:
    """`/mnt/nas/masters`, `file:///…`, `sftp://user@host:port/path?key=~/.ssh/id_ed25519`,
    `s3://bucket/prefix?endpoint_url=http://host:9000&profile=nas`."""
    if not url:
        raise SyncError(f"no sync target; pass --target URL or set {ENV_TARGET}")
    if "://" not in url:
        return TargetSpec("file", str(Path(url).expanduser().absolute()), name=str(Path(url).expanduser().absolute()))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query))
    name = redact_url(url)
    if scheme == "file":
        return TargetSpec("file", unquote(parts.path), name=name)
    if scheme in ("sftp", "ssh"):
        if not parts.hostname:
            raise SyncError(f"{name}: an SFTP target needs a host, e.g. sftp://user@host/srv/masters")
        return TargetSpec(
            "sftp",
            unquote(parts.path) or ".",
            host=parts.hostname,
            port=parts.port or 22,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            options=options,
            name=name,
        )
    if scheme == "s3":
        if not parts.hostname:
            raise SyncError(f"{name}: an S3 target needs a bucket, e.g. s3://bucket/prefix")
        bucket = parts.netloc.rpartition("@")[2]
        return TargetSpec(
            "s3",
            f"{bucket}/{unquote(parts.path).strip('/')}".rstrip("/"),
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            options=options,
            name=name,
        )
    raise SyncError(f"{name}: unknown target kind {scheme!r}; use a directory path, sftp:// or s3://")


class Throttle:
    """Keeps the average rate of an upload at or under `bytes_per_s`; a stop event cuts a
    wait short so a slow upload never delays shutdown."""

    def __init__(self, bytes_per_s: float | None, stop: threading.Event | None = None) -> None:
        self.rate = bytes_per_s if bytes_per_s and bytes_per_s > 0 else None
        self.stop = stop
        self.start = time.monotonic()
        self.sent = 0

    def consume(self, n: int) -> None:
        self.sent += n
        if self.stop is not None and self.stop.is_set():
            raise UploadStopped("stopping")
        if self.rate is None:
            return
        ahead = self.sent / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            if self.stop is not None:
                if self.stop.wait(ahead):
                    raise UploadStopped("stopping")
            else:
                time.sleep(ahead)


class Target:
    """A remote root reached through an fsspec filesystem."""

    atomic_rename = True

    def __init__(self, spec: TargetSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self._fs: Any = None

    # connection ----------------------------------------------------------------------------

    def _make_fs(self) -> Any:
        raise NotImplementedError

    @property
    def fs(self) -> Any:
        if self._fs is None:
            try:
                self._fs = self._make_fs()
            except SyncError:
                raise
            except Exception as exc:  # every library has its own connection errors
                raise TargetUnreachable(f"{self.name}: {describe_error(exc)}") from exc
        return self._fs

    def close(self) -> None:
        """Drop the connection; the next operation reconnects."""
        fs, self._fs = self._fs, None
        client = getattr(fs, "client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a dead connection may fail; it is being dropped anyway
                log.debug("closing %s failed", self.name, exc_info=True)

    def full(self, rel: str) -> str:
        return f"{self.spec.path.rstrip('/')}/{rel}" if self.spec.path not in ("", ".") else rel

    # operations ----------------------------------------------------------------------------

    def size(self, rel: str) -> int | None:
        """Size of a remote file, or None when it is not there."""
        try:
            info = self.fs.info(self.full(rel))
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        return int(info["size"])

    def sha256(self, rel: str) -> str:
        """Checksum of the remote bytes, read back end to end."""
        h = hashlib.sha256()
        with self.fs.open(self.full(rel), "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()

    def exists(self, rel: str) -> bool:
        return self.size(rel) is not None

    def listdir(self, rel: str) -> list[str]:
        """Base names in a remote folder (empty when it does not exist)."""
        try:
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.full(rel), detail=False))
        except FileNotFoundError:
            return []

    def partials(self, rel: str) -> list[str]:
        folder, _, base = rel.rpartition("/")
        prefix = f".{base}."
        return [f"{folder}/{n}" for n in self.listdir(folder) if n.startswith(prefix) and n.endswith(".part")]

    def remove_partials(self, rel: str) -> int:
        """Delete temporary files an interrupted upload of `rel` left behind (never the final name)."""
        n = 0
        for part in self.partials(rel):
            try:
                self.fs.rm_file(self.full(part))
                n += 1
            except FileNotFoundError:
                pass
        return n

    def upload(
        self,
        source: Callable[[], Any],
        rel: str,
        throttle: Throttle,
        before_commit: Callable[[], None] | None = None,
    ) -> int:
        """Write the bytes read from `source()` (a binary file object) to `rel`, visible
        under that name only once complete; `before_commit` may still refuse the bytes
        (by raising) before they become visible. Returns the bytes sent."""
        folder = rel.rpartition("/")[0]
        self.remove_partials(rel)
        if folder:
            self.fs.makedirs(self.full(folder), exist_ok=True)
        if not self.atomic_rename:
            return self._write(source, rel, throttle, before_commit)
        tmp = f"{folder}/.{rel.rpartition('/')[2]}.{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.part"
        try:
            sent = self._write(source, tmp, throttle, before_commit)
            self._rename(tmp, rel)
        except BaseException:
            self._discard(tmp)
            raise
        return sent

    def _write(
        self, source: Callable[[], Any], rel: str, throttle: Throttle, before_commit: Callable[[], None] | None
    ) -> int:
        sent = 0
        with source() as src, self.fs.open(self.full(rel), "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
                sent += len(chunk)
                throttle.consume(len(chunk))
            if before_commit is not None:
                before_commit()
            self._flush(out)
        return sent

    def _flush(self, out: Any) -> None:
        """Push the bytes to stable storage where the target allows it."""

    def _rename(self, tmp: str, rel: str) -> None:
        self.fs.mv(self.full(tmp), self.full(rel))

    def _discard(self, tmp: str) -> None:
        try:
            if self._fs is not None:
                self._fs.rm_file(self.full(tmp))
        except Exception:  # the link may be down; the next upload removes it
            log.debug("could not remove %s on %s", tmp, self.name, exc_info=True)


class DirectoryTarget(Target):
    """A local or mounted directory (NFS, SMB, USB disk)."""

    def _make_fs(self) -> Any:
        from fsspec.implementations.local import LocalFileSystem

        root = Path(self.spec.path)
        if not root.is_dir():
            raise TargetUnreachable(f"{self.name}: no such directory; mount it or create it")
        return LocalFileSystem()

    def _flush(self, out: Any) -> None:
        out.flush()
        os.fsync(out.fileno())

    def _rename(self, tmp: str, rel: str) -> None:
        final = Path(self.full(rel))
        os.replace(self.full(tmp), final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SftpTarget(Target):
    """An SSH server: keys from the ssh agent, ~/.ssh or `?key=PATH`; the host key must be
    in ~/.ssh/known_hosts (or `?known_hosts=PATH`), unknown hosts are refused."""

    def _make_fs(self) -> Any:
        try:
            import paramiko
            from fsspec.implementations.sftp import SFTPFileSystem
        except ImportError as exc:
            raise SyncError("SFTP targets need paramiko: pip install 'obsagent[sync]'") from exc
        opts = self.spec.options
        known = [Path(p).expanduser() for p in opts.get("known_hosts", "~/.ssh/known_hosts").split(",")]
        kwargs: dict[str, Any] = {
            "port": self.spec.port,
            "username": self.spec.user,
            "timeout": float(opts.get("timeout", 15)),
            "banner_timeout": float(opts.get("timeout", 15)),
            "auth_timeout": float(opts.get("timeout", 15)),
            "host_key_policy": KnownHostsPolicy(known, paramiko),
            "skip_instance_cache": True,
        }
        if self.spec.password:
            kwargs["password"] = self.spec.password
        if "key" in opts:
            kwargs["key_filename"] = str(Path(opts["key"]).expanduser())
        fs = SFTPFileSystem(self.spec.host, **kwargs)
        channel = fs.client.get_transport()
        if channel is not None:
            channel.set_keepalive(15)
        return fs


def KnownHostsPolicy(files: list[Path], paramiko: Any) -> Any:  # noqa: N802 - builds a class instance
    """A host-key policy that accepts only keys listed in the given known_hosts files."""

    class _Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            keys = paramiko.HostKeys()
            for f in files:
                if f.is_file():
                    keys.load(str(f))
            if keys.check(hostname, key):
                return
            raise SyncError(
                f"host key of {hostname} is not in {', '.join(map(str, files))}; "
                f"add it with `ssh-keyscan` or by connecting once with ssh"
            )

    return _Policy()


class S3Target(Target):
    """S3 or compatible storage (MinIO, Garage, Ceph): credentials from the AWS environment,
    `?profile=NAME` or the URL's user:password; `?endpoint_url=` for non-AWS servers."""

    atomic_rename = False

    def _make_fs(self) -> Any:
        try:
            import s3fs
        except ImportError as exc:
            raise SyncError("S3 targets need s3fs: pip install 'obsagent[sync]'") from exc
        opts = self.spec.options
        kwargs: dict[str, Any] = {"skip_instance_cache": True}
        client_kwargs: dict[str, Any] = {}
        if "endpoint_url" in opts:
            kwargs["endpoint_url"] = opts["endpoint_url"]
        if "region" in opts:
            client_kwargs["region_name"] = opts["region"]
        if "profile" in opts:
            kwargs["profile"] = opts["profile"]
        if self.spec.user and self.spec.password:
            kwargs["key"], kwargs["secret"] = self.spec.user, self.spec.password
        kwargs["client_kwargs"] = client_kwargs
        kwargs["config_kwargs"] = {"connect_timeout": float(opts.get("timeout", 15)), "retries": {"max_attempts": 2}}
        fs = s3fs.S3FileSystem(**kwargs)
        bucket = self.spec.path.split("/", 1)[0]
        if not fs.exists(bucket):
            raise SyncError(f"{self.name}: bucket {bucket!r} does not exist or is not ours; create it first")
        return fs

    def _write(
        self, source: Callable[[], Any], rel: str, throttle: Throttle, before_commit: Callable[[], None] | None
    ) -> int:
        """The object is only committed (PUT or multipart completion) after every byte was
        read and `before_commit` agreed; otherwise the upload is discarded."""
        sent = 0
        out = self.fs.open(self.full(rel), "wb", autocommit=False)
        try:
            with source() as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                    sent += len(chunk)
                    throttle.consume(len(chunk))
            if before_commit is not None:
                before_commit()
            out.flush(force=True)
            out.commit()
        except BaseException:
            try:
                out.discard()
            except Exception:  # aborting a multipart upload over a dead link fails; S3 expires it
                log.debug("could not abort upload of %s", rel, exc_info=True)
            raise
        finally:
            out.closed = True
        return sent

    def listdir(self, rel: str) -> list[str]:
        self.fs.invalidate_cache()
        return super().listdir(rel)

    def size(self, rel: str) -> int | None:
        self.fs.invalidate_cache()
        return super().size(rel)


def open_target(url: str | None) -> Target:
    spec = parse_target(url or os.environ.get(ENV_TARGET, ""))
    kinds: dict[str, type[Target]] = {"file": DirectoryTarget, "sftp": SftpTarget, "s3": S3Target}
    return kinds[spec.scheme](spec)


def describe_error(exc: BaseException) -> str:
    """One line naming the error, with any URL in it redacted."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"[a-z0-9+.-]+://[^\s'\"]+", lambda m: redact_url(m.group(0)), text)

