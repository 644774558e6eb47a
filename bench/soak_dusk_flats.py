"""Dusk sky flats on the simulator, N times in a row: none may hit the driver's 0 s exposure Alert.

The flaky "ALERT on CCD_EXPOSURE: exposure 0.0 s outside ..." came from writing our exposure into
libindi's copy of CCD_EXPOSURE while the driver's countdown was applied to it. Run by hand:

    .venv/bin/python bench/soak_dusk_flats.py --runs 20

Prints one line per run and a summary; exits 1 if any run failed or saw the Alert.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.commands.run import sim_start_for  # noqa: E402
from agent.config import load_sequence  # noqa: E402
from indi_sim.config import SimConfig  # noqa: E402
from indi_sim.launch import SimServer  # noqa: E402

NIGHT = dt.date(2026, 11, 22)


def sequence(tmp: Path) -> Path:
    seq = {
        "version": 1,
        "site": {"name": "Berlin", "latitude": 52.52, "longitude": 13.40, "elevation": 40,
                 "timezone": "Europe/Berlin", "horizon": 15},
        "indi": {"devices": {"camera": "Sim Camera", "wheel": "Sim Wheel", "flat_panel": "Sim FlatPanel",
                             "mount": "Sim Mount"}},
        "camera": {"sensor": "cmos", "gain": 120, "offset": 30},
        "filters": ["L", "R", "G", "B", "Ha"],
        "targets": [],
        "calibration": {"flats": {"source": "sky-both"}},
    }
    path = tmp / "flats.yaml"
    path.write_text(yaml.safe_dump(seq, sort_keys=False))
    return path


def one_run(i: int, factor: float) -> tuple[bool, str]:
    tmp = Path(tempfile.mkdtemp(prefix="soak-flats-"))
    seq_path = sequence(tmp)
    seq = load_sequence(seq_path)
    start = sim_start_for(seq, NIGHT).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    cfg = SimConfig(preset="small", seed=7 + i, lat=52.52, lon=13.40, elevation=40, start=start,
                    time_factor=factor, filters=list(seq.filters))
    cfg.width, cfg.height = 256, 192
    with SimServer(cfg, log_dir=str(tmp)) as server:
        server.env["HOME"] = str(tmp)
        out = subprocess.run(
            [sys.executable, "-m", "agent.cli", "flats", "--indi", server.address, "--sequence", str(seq_path),
             "--source", "sky", "--period", "dusk", "--filters", "L,R,Ha", "--count", "5",
             "--out", str(tmp / "frames"), "--data", str(tmp / "data")],
            capture_output=True, text=True, timeout=900, cwd=ROOT,
        )
    text = out.stdout + out.stderr
    alert = "outside 0.0001" in text or "exposure 0.0 s" in text
    flats = len(list((tmp / "frames").rglob("*.fits")))
    ok = out.returncode in (0, 1) and not alert and flats > 0
    return ok, f"exit {out.returncode}, {flats} frames" + (", ALERT 0 s" if alert else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--time-factor", type=float, default=120.0)
    args = parser.parse_args()
    failures = 0
    t0 = time.monotonic()
    for i in range(args.runs):
        ok, what = one_run(i, args.time_factor)
        failures += not ok
        print(f"run {i + 1:2d}: {'ok ' if ok else 'BAD'} {what}", flush=True)
    print(f"{args.runs - failures} of {args.runs} dusk-flat runs without the Alert ({time.monotonic() - t0:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
