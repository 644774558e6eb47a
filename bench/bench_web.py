"""Web dashboard bench: resident memory idle and after 2,000 requests, Needs page requests per second,
and page times with 50,000 frames in the library.

Runs `obsagent web` as its own process (as on the Pi) over a library filled like
bench_library.py's, and asks it over HTTP/1.1 keep-alive from one client thread. The web starts
computing its slowest answers (needs, the lights index) as it starts, in a worker process; idle
memory is given just after start and once that warm-up has settled. How long the worker takes
for each answer is measured apart: pages never wait for it twice.

    .venv/bin/python bench/bench_web.py [--frames 50000] [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_library import fill  # noqa: E402

from agent.library.keys import LibraryPolicy  # noqa: E402
from agent.library.store import Library  # noqa: E402
from agent.status import NightStatus, write_status  # noqa: E402
from agent.web.answer_worker import compute_elsewhere  # noqa: E402

PAGES = ["/", "/library?tab=masters", "/library?tab=frames", "/library?tab=needs", "/lights", "/campaigns",
         "/reports", "/api/status", "/api/needs", "/api/masters", "/api/groups"]  # fmt: skip
TIMED = PAGES + ["/library?tab=needs&page_no=2", "/api/report"]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def settled_rss_mb(pid: int, timeout: float = 60.0) -> float:
    """Resident memory once it has not changed for two seconds (the warm-up has landed)."""
    deadline = time.monotonic() + timeout
    last = rss_mb(pid)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = rss_mb(pid)
        if abs(now - last) < 0.05:
            return now
        last = now
    return last


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    return r.status, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with Library(root) as lib:
            t0 = time.perf_counter()
            fill(lib, args.frames)
            print(f"library: {args.frames} frames inserted in {time.perf_counter() - t0:.1f} s")
        status = NightStatus(night="2026-01-10", state="imaging", activity="M 42 · L · 3 of 40")
        for i in range(600):
            status.record_cooler(-10.0 + 0.01 * (i % 7), -10.0, 45.0)
            status.record_weather(True, "clear")
        write_status(root, status)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "web", "--listen", f"127.0.0.1:{port}", "--data", str(root)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "OBSAGENT_WEB_TOKEN": ""},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the web process did not start") from None
                    time.sleep(0.1)
            time.sleep(1.0)
            print(f"resident memory just started: {rss_mb(proc.pid):.1f} MB")
            idle = settled_rss_mb(proc.pid)
            print(f"resident memory idle (warm-up done): {idle:.1f} MB")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            print("page times with the library as filled (cold = first request; warm = median of 5 more):")
            for page in TIMED:
                status_code, cold = get(conn, page)
                warm = statistics.median(get(conn, page)[1] for _ in range(5))
                print(f"  {page:30s} {status_code}  cold {cold * 1000:7.1f} ms   warm {warm * 1000:6.1f} ms")
            n_needs = 300
            t0 = time.perf_counter()
            for _ in range(n_needs):
                get(conn, "/library?tab=needs")
            rate = n_needs / (time.perf_counter() - t0)
            print(f"Needs page: {rate:.0f} requests/s (one client, keep-alive, cached between library changes)")
            t0 = time.perf_counter()
            errors = 0
            for i in range(args.requests):
                code, _ = get(conn, PAGES[i % len(PAGES)])
                errors += code != 200
            elapsed = time.perf_counter() - t0
            after = rss_mb(proc.pid)
            print(f"{args.requests} mixed requests in {elapsed:.1f} s ({args.requests / elapsed:.0f}/s), {errors} errors")
            print(f"resident memory after {args.requests} requests: {after:.1f} MB "
                  f"(peak {rss_mb(proc.pid, 'VmHWM'):.1f} MB)")  # fmt: skip
            # What the first request pays after the agent commits (cache invalidated): touch the WAL.
            with Library(root) as lib:
                lib.set_camera_kind("bench camera", lib.camera_kind("bench camera"))
            _, cold = get(conn, "/library?tab=needs")
            print(f"Needs page right after a library change: {cold * 1000:.0f} ms (the last answer, "
                  "while the worker computes the next)")  # fmt: skip
            conn.close()
            policy = LibraryPolicy()
            for name in ("needs", "lights", "groups"):
                t0 = time.perf_counter()
                compute_elsewhere(root, name, policy)
                print(f"worker process: {name} answer in {time.perf_counter() - t0:.2f} s (start-up included)")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
