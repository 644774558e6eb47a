"""`obsagent sync`: send masters upstream (once, or until stopped) and show the outbox."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

from rich.console import Console
from rich.table import Table

from agent.errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sync",
        help="send masters upstream (directory, SFTP, S3) and prune raw frames already safe there",
        description=(
            "Upload queued masters with their JSON manifests to a target, verify each remote checksum, "
            "retry with backoff. Target: a directory path, sftp://user@host[:port]/path[?key=PATH] or "
            "s3://bucket/prefix[?endpoint_url=URL&profile=NAME]; default from OBSAGENT_SYNC_TARGET."
        ),
    )
    p.add_argument("--data", metavar="DIR", help="data directory (default: OBSAGENT_DATA or XDG data dir)")
    p.add_argument("--target", metavar="URL", help="where masters go (default: $OBSAGENT_SYNC_TARGET)")
    p.add_argument("--once", action="store_true", help="one pass over every queued master, then exit")
    p.add_argument("--bandwidth", type=float, metavar="KBPS", help="upload limit in kilobytes (1000 B) per second")
    p.add_argument("--status", action="store_true", help="show the outbox and exit (read-only)")
    p.add_argument("--retry-failed", action="store_true", help="re-open deliveries that failed for good")
    p.add_argument("--prune-age-days", type=float, metavar="DAYS", help="prune synced raw frames older than this")
    p.add_argument("--keep-free", type=float, metavar="GB", help="prune synced raw frames while free space < GB")
    p.add_argument("--poll", type=float, default=60.0, metavar="S", help="seconds between passes (default 60)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from agent.paths import data_dir
    from agent.sync.outbox import outbox_status, retry_failed
    from agent.sync.retention import RetentionPolicy
    from agent.sync.targets import open_target
    from agent.sync.worker import SyncWorker, db_file

    data = data_dir(args.data)
    db = db_file(data)
    console = Console()
    if args.bandwidth is not None and args.bandwidth <= 0:
        raise ConfigError("--bandwidth must be a positive number of kilobytes per second")
    if args.status:
        name = open_target(args.target).name if (args.target or _env_target()) else None
        status = outbox_status(db, name)
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            _print_status(console, status)
        return 0
    retention = None
    if args.prune_age_days is not None or args.keep_free is not None:
        retention = RetentionPolicy(
            max_age_days=args.prune_age_days,
            keep_free_bytes=int(args.keep_free * 1e9) if args.keep_free is not None else None,
        )
    worker = SyncWorker(data, args.target, bandwidth_kbps=args.bandwidth, retention=retention, poll_s=args.poll)
    if args.retry_failed:
        retry_failed(db, worker.target_name)
    if args.once:
        report = worker.run_once(ignore_backoff=True)
        if args.json:
            print(json.dumps(report.as_dict(), indent=2))
        else:
            console.print(
                f"{worker.target_name}: {len(report.uploaded)} uploaded, {len(report.already_remote)} already there, "
                f"{len(report.manifests_updated)} manifests updated, {len(report.failed)} failed, "
                f"{report.bytes_sent} bytes sent"
            )
            for entry_id, error in report.failed:
                console.print(f"  outbox #{entry_id}: {error}")
            if report.busy:
                console.print("another sync worker holds this data directory; nothing sent")
            if report.pruned is not None:
                console.print(f"pruned {len(report.pruned.pruned)} raw frames ({report.pruned.freed_bytes} bytes)")
        return 0 if report.ok else 1
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    worker.start()
    console.print(f"syncing to {worker.target_name}; Ctrl-C to stop", style="dim")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        worker.stop()
    return 0


def _env_target() -> str | None:
    import os

    from agent.sync.targets import ENV_TARGET

    return os.environ.get(ENV_TARGET)


def _print_status(console: Console, status: dict[str, Any]) -> None:
    console.print(
        f"queued {status['queued']} masters ({status['queued_bytes']} bytes), "
        f"{status['confirmed_remote']} confirmed remote, {status['not_yet_queued']} not yet queued; "
        f"pruned {status['pruned_frames']} raw frames ({status['pruned_bytes']} bytes)"
    )
    table = Table("target", "confirmed", "pending", "pending bytes", "failed", "retrying", "last error")
    for name, t in status["targets"].items():
        table.add_row(
            name,
            str(t["confirmed"]),
            str(t["pending"]),
            str(t["pending_bytes"]),
            str(t["failed"]),
            str(t["retrying"]),
            t["last_error"] or "",
        )
    console.print(table)
