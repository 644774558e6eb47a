#!/usr/bin/env python3
"""The time the agent adds between exposures, read from the INDI traffic of a simulated night.

    .venv/bin/python bench/bench_night.py                       # examples/night.yaml --sim, 26 MP
    .venv/bin/python bench/bench_night.py --preset small --seconds 300
    .venv/bin/python bench/bench_night.py --attach HOST:PORT    # listen to a night already running

A passive INDI client (getProperties + enableBLOB Also) timestamps, on arrival, the end of each
image download (the closing tag of the camera's BLOB vector) and the start of the next exposure
(the camera's CCD_EXPOSURE going Busy), and the filter wheel's FILTER_SLOT going Busy and back
to Ok.  The gap between a download and the next exposure start is the agent's time (saving the
FITS, recording it, deciding the next step, sending the exposure); with a filter change in
between, the wheel's time is reported beside it.  The simulator's clock runs fast, but the
agent's work between exposures is real wall time, so the gaps are what they would be at the
mount.  Peak RSS of the whole agent (runner, build worker, calibration) comes from GNU time.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPEN = re.compile(rb"<(set|def)(Number|BLOB|Switch|Text|Light)Vector\b([^>]*)>")
ATTR = re.compile(rb'(\w+)="([^"]*)"')


@dataclass
class Traffic:
    """Arrival times (monotonic seconds) of what matters between exposures."""

    downloads: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    wheel: list[tuple[float, float]] = field(default_factory=list)  # (Busy, Ok)
    _exposing: bool = False
    _wheel_busy: float | None = None

    def event(self, kind: bytes, attrs: dict[bytes, bytes], now: float) -> None:
        name = attrs.get(b"name", b"")
        state = attrs.get(b"state", b"")
        if name == b"CCD_EXPOSURE" and kind == b"Number":
            busy = state == b"Busy"
            if busy and not self._exposing:
                self.starts.append(now)
            self._exposing = busy
        elif name == b"FILTER_SLOT":
            if state == b"Busy" and self._wheel_busy is None:
                self._wheel_busy = now
            elif state in (b"Ok", b"Idle") and self._wheel_busy is not None:
                self.wheel.append((self._wheel_busy, now))
                self._wheel_busy = None

    def gaps(self) -> tuple[list[float], list[tuple[float, float]]]:
        """(gaps without a filter change, (gap, wheel time) with one)."""
        plain: list[float] = []
        changed: list[tuple[float, float]] = []
        for end in self.downloads:
            nxt = next((s for s in self.starts if s > end), None)
            if nxt is None or nxt - end > 60.0:  # the night moved on (slew, flats, end)
                continue
            moves = [(b, o) for b, o in self.wheel if end <= b and o <= nxt]
            if moves:
                changed.append((nxt - end, sum(o - b for b, o in moves)))
            else:
                plain.append(nxt - end)
        return plain, changed


def listen(host: str, port: int, until: subprocess.Popen[bytes] | None, seconds: float) -> Traffic:
    traffic = Traffic()
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b'<getProperties version="1.7"/>\n<enableBLOB>Also</enableBLOB>\n')
    buf = b""
    in_blob = False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (until is None or until.poll() is None):
        ready, _, _ = select.select([sock], [], [], 0.5)
        if not ready:
            continue
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        now = time.monotonic()
        buf += chunk
        while True:
            if in_blob:
                end = buf.find(b"</setBLOBVector>")
                if end < 0:
                    buf = buf[-32:]
                    break
                traffic.downloads.append(now)
                buf = buf[end + 16 :]
                in_blob = False
                continue
            m = OPEN.search(buf)
            if m is None:
                buf = buf[-512:]
                break
            attrs = dict(ATTR.findall(m.group(3)))
            if m.group(1) == b"set" and m.group(2) == b"BLOB":
                in_blob = True
            else:
                traffic.event(m.group(2), attrs, now)
            buf = buf[m.end() :]
    sock.close()
    return traffic


def summary(traffic: Traffic) -> str:
    plain, changed = traffic.gaps()
    lines = [f"exposures started {len(traffic.starts)}, downloads {len(traffic.downloads)}"]
    if plain:
        q = statistics.quantiles(plain, n=20) if len(plain) > 1 else [plain[0]] * 19
        lines.append(
            f"between exposures, filter unchanged: median {statistics.median(plain):.3f} s, "
            f"95th percentile {q[18]:.3f} s, max {max(plain):.3f} s ({len(plain)} gaps)"
        )
    if changed:
        extra = [g - w for g, w in changed]
        lines.append(
            f"with a filter change: median gap {statistics.median(g for g, _ in changed):.3f} s, "
            f"wheel {statistics.median(w for _, w in changed):.3f} s, agent's share "
            f"{statistics.median(extra):.3f} s ({len(changed)} gaps)"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attach", metavar="HOST:PORT", help="listen to a running night instead of starting one")
    ap.add_argument("--seconds", type=float, default=900.0, help="stop listening after this long")
    ap.add_argument("--sequence", default=str(ROOT / "examples" / "night.yaml"))
    ap.add_argument("--preset", default="imx571", help="simulated sensor (imx571: 26 MP; small: 0.8 MP)")
    ap.add_argument("--time-factor", default="120", help="simulated seconds per wall second")
    args = ap.parse_args()
    if args.attach:
        host, port = args.attach.rsplit(":", 1)
        print(summary(listen(host, int(port), None, args.seconds)))
        return 0
    data = tempfile.mkdtemp(prefix="obsagent-bench-night-")
    rss = Path(data) / "rss"
    cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss), str(Path(sys.executable).parent / "obsagent"),
           "run", args.sequence, "--sim", "--data", data, "--quiet", "--preset", args.preset,
           "--time-factor", args.time_factor]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    indi = None
    for line in proc.stdout:
        m = re.search(rb"simulated observatory on (\S+):(\d+)", line)
        if m:
            indi = (m.group(1).decode(), int(m.group(2)))
            break
    if indi is None:
        raise SystemExit("the night did not say where its simulator listens")
    traffic = listen(indi[0], indi[1], proc, args.seconds)
    # stop the agent, not GNU time, so that time still reports the agent's peak
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    agent = (
        int(children.read_text().split()[0]) if children.exists() and children.read_text().split() else None
    )
    if agent is not None:
        os.kill(agent, signal.SIGTERM)
    else:
        proc.terminate()
    proc.wait(timeout=120)
    print(summary(traffic))
    if rss.exists() and rss.read_text().split():
        print(f"agent peak RSS (runner process) {int(rss.read_text().split()[-1]) / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
