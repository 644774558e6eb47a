"""Time `SimModel.render` for full-size frames (run by hand: `python bench/bench_render.py [preset ...]`)."""

from __future__ import annotations

import statistics
import sys
import time

from indi_sim.model import SimModel


def bench(preset: str, repeats: int = 5) -> None:
    model = SimModel(preset, seed=1)
    t0 = time.perf_counter()
    model.render("light", 10.0, sun_altitude=-8.0)
    first = time.perf_counter() - t0
    cases = {
        "twilight light": dict(frame_type="light", exposure=10.0, sun_altitude=-8.0),
        "dark (cap closed)": dict(frame_type="dark", exposure=300.0, cap_closed=True),
        "panel flat": dict(frame_type="flat", exposure=2.0, cap_closed=True, panel_brightness=120),
    }
    s = model.spec
    print(f"{preset}: {s.width}x{s.height} {s.bit_depth}-bit {s.kind}; first frame incl. fixed maps {first:.2f} s")
    for name, kwargs in cases.items():
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model.render(**kwargs)  # type: ignore[arg-type]
            times.append(time.perf_counter() - t)
        print(f"  {name:18s} median {statistics.median(times):.3f} s  min {min(times):.3f} s  ({repeats} runs)")


if __name__ == "__main__":
    for preset in sys.argv[1:] or ["imx294"]:
        bench(preset)
