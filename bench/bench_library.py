"""How long `needs()` takes with a large library (acceptance: under 1 s with 50 000 frames).

Rows are inserted through the library's own insert path (no FITS files are needed to time the
queries). Run by hand:  .venv/bin/python bench/bench_library.py [--frames 50000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from agent.library.headers import FrameInfo
from agent.library.ingest import insert_frame
from agent.library.keys import FrameType, LibraryPolicy
from agent.library.needs import needs
from agent.library.store import Library

CAMERAS = ["ZWO ASI294MC Pro", "ZWO ASI2600MM Pro", "QHY268M"]
FILTERS = ["L", "R", "G", "B", "Ha", "OIII", "SII"]
MIX = [(FrameType.LIGHT, 0.6), (FrameType.DARK, 0.15), (FrameType.FLAT, 0.15), (FrameType.BIAS, 0.05),
       (FrameType.DARKFLAT, 0.05)]  # fmt: skip


def fill(lib: Library, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    now = time.time()
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    with lib.transaction() as c:
        for i in range(n):
            kind = rng.choices(kinds, weights)[0]
            set_temp = rng.choice([-10.0, -15.0, -20.0])
            info = FrameInfo(
                frame_type=kind,
                camera=rng.choice(CAMERAS),
                width=6248,
                height=4176,
                binning=rng.choice(["1x1", "1x1", "1x1", "2x2"]),
                gain=rng.choice([0.0, 100.0, 120.0]),
                offset=rng.choice([10.0, 30.0]),
                readout_mode=None,
                bit_depth=16,
                filter=rng.choice(FILTERS) if kind in (FrameType.LIGHT, FrameType.FLAT) else None,
                exposure={
                    FrameType.LIGHT: rng.choice([60.0, 120.0, 180.0, 300.0]),
                    FrameType.DARK: rng.choice([60.0, 120.0, 180.0, 300.0]),
                    FrameType.FLAT: rng.choice([0.5, 1.0, 2.0]),
                    FrameType.DARKFLAT: rng.choice([0.5, 1.0, 2.0]),
                    FrameType.BIAS: 0.0,
                }[kind],
                set_temp=set_temp,
                ccd_temp=set_temp + rng.uniform(-0.3, 0.3),
                captured_at=now - rng.uniform(0, 120 * 86400),
                dialect="nina",
            )
            insert_frame(c, f"/archive/{i:06d}.fits", f"{i:064x}", 52_000_000, info, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Library(Path(tmp)) as lib:
        t0 = time.perf_counter()
        fill(lib, args.frames)
        print(f"inserted {args.frames} frames in {time.perf_counter() - t0:.1f} s")
        policy = LibraryPolicy()
        times = []
        result = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = needs(lib, policy, light_days=30)
            times.append(time.perf_counter() - t0)
        kinds: dict[str, int] = {}
        for n in result:
            kinds[n.kind] = kinds.get(n.kind, 0) + 1
        print(f"needs(): {len(result)} entries {kinds}")
        print(f"needs() over {args.frames} frames: median {statistics.median(times) * 1000:.0f} ms, "
              f"max {max(times) * 1000:.0f} ms ({args.repeat} runs)")  # fmt: skip
        t0 = time.perf_counter()
        groups = lib.groups(policy)
        print(f"groups(): {len(groups)} groups in {(time.perf_counter() - t0) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
