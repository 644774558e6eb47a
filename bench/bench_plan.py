"""Benchmark: how long planning a night takes (cold in a fresh process, and warm).

Run by hand: `.venv/bin/python bench/bench_plan.py [SEQUENCE] [--targets N]`.
"Cold" is the first plan in a new process (Earth orientation table loaded, from the cache after
the first ever run; without the cache astropy parses its text tables for >1 s); "warm" is
a further night planned in the same process, which is what the agent does each evening.
Network access is refused for the whole run, so a hidden download would fail loudly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _refuse_network() -> None:
    real = socket.socket.connect

    def connect(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"benchmark tried to reach the network ({address})")
        return real(self, address)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign]


def _sequence(path: str, extra_targets: int):  # type: ignore[no-untyped-def]
    from agent.config import load_sequence, parse_sequence

    seq = load_sequence(path)
    if not extra_targets:
        return seq
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    names = [f"M{n}" for n in range(1, 111)]
    data["targets"] = data.get("targets", []) + [
        {
            "name": names[i % len(names)] + ("" if i < len(names) else f" copy {i}"),
            "exposures": [{"filter": data["filters"][0], "exposure": 120, "count": 30}],
        }
        for i in range(extra_targets)
    ]
    for target in data["targets"][-extra_targets:]:
        if " copy " in target["name"]:
            from agent.sky.catalogue import lookup

            found = lookup(target["name"].split(" copy ")[0])
            assert found is not None
            target["ra"], target["dec"] = found.ra_deg, found.dec_deg
    return parse_sequence(yaml.safe_dump(data), path)


def one_run(path: str, extra_targets: int, repeats: int) -> dict[str, float]:
    _refuse_network()
    t0 = time.perf_counter()
    from agent.planner import plan_night

    seq = _sequence(path, extra_targets)
    t1 = time.perf_counter()
    plan_night(seq, dt.date(2026, 12, 21))
    t2 = time.perf_counter()
    warm = []
    for day in range(repeats):
        start = time.perf_counter()
        plan_night(seq, dt.date(2026, 3, 1) + dt.timedelta(days=30 * day))
        warm.append(time.perf_counter() - start)
    return {
        "import_and_load_s": t1 - t0,
        "first_plan_s": t2 - t1,
        "warm_median_s": statistics.median(warm),
        "warm_max_s": max(warm),
        "targets": float(len(seq.targets)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequence", nargs="?", default=str(ROOT / "examples" / "night.yaml"))
    parser.add_argument("--targets", type=int, default=0, help="add N catalogue targets to the sequence")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.sequence, args.targets, args.repeats)))
        return 0
    command = [
        sys.executable,
        __file__,
        args.sequence,
        "--targets",
        str(args.targets),
        "--repeats",
        str(args.repeats),
        "--child",
    ]
    start = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    total = time.perf_counter() - start
    result = json.loads(out.strip().splitlines()[-1])
    print(f"sequence          {args.sequence} ({int(result['targets'])} targets)")
    print(
        f"process total     {total:.2f} s  (interpreter start, imports, first plan, {args.repeats} warm plans)"
    )
    print(f"imports + load    {result['import_and_load_s']:.2f} s")
    print(
        f"first plan (cold) {result['first_plan_s']:.2f} s  (first in this process; IERS table from the obsagent cache once built)"
    )
    print(f"warm plan         median {result['warm_median_s']:.2f} s, max {result['warm_max_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
