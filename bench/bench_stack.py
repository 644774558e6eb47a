#!/usr/bin/env python3
"""Benchmark obsagent's stacking against Siril (siril-cli) and ccdproc on the same synthetic frames.

    .venv/bin/python bench/bench_stack.py                 # 30 IMX294 darks + 50 IMX571 flats
    .venv/bin/python bench/bench_stack.py --skip-flats    # darks only
    .venv/bin/python bench/bench_stack.py --darks 10 --scale 0.25 --skip-flats   # quick look

Each tool runs in its own child process; wall time is measured around it and peak RSS comes from
the kernel's accounting of that child (os.wait4 ru_maxrss).  Data live under bench/out/.
Siril's masters are float32 scaled to [0, 1]; they are multiplied by 65535 before comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
IMX294 = (2822, 4144)  # rows, cols
IMX571 = (4176, 6248)


@dataclass
class Run:
    tool: str
    case: str
    seconds: float
    peak_rss_mb: float
    output: Path | None


def run_child(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float]:
    """Run cmd; return (wall seconds, peak RSS MB of the child)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(output.decode(errors="replace"))
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024.0


# --- data ---------------------------------------------------------------------------------


def make_darks(folder: Path, count: int, shape: tuple[int, int], seed: int = 294) -> list[Path]:
    """uint16 darks: offset + fixed pattern + hot pixels + read noise + cosmic rays."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"dark_{i:04d}.fits" for i in range(1, count + 1)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    rows, cols = shape
    pattern = 800.0 + rng.normal(0, 3, (1, cols)) + rng.normal(0, 2, (rows, 1))
    hot = rng.random(shape) < 5e-4
    pattern = pattern + hot * rng.uniform(200, 20000, shape)
    for p in paths:
        frame = pattern + rng.normal(0, 12, shape)
        n_hits = int(2e-4 * rows * cols)  # cosmic rays and their tails
        r = rng.integers(0, rows - 1, n_hits)
        c = rng.integers(0, cols - 1, n_hits)
        amp = rng.uniform(500, 64000, n_hits)
        frame[r, c] += amp
        frame[r + 1, c] += amp * 0.3
        frame[r, c + 1] += amp * 0.2
        data = np.clip(np.rint(frame), 0, 65535).astype(np.uint16)
        hdr = fits.Header(
            {"IMAGETYP": "Dark Frame", "EXPTIME": 120.0, "GAIN": 120, "OFFSET": 30, "CCD-TEMP": -10.0}
        )
        fits.PrimaryHDU(data, hdr).writeto(p, overwrite=True)
    return paths


def make_flats(folder: Path, count: int, shape: tuple[int, int], seed: int = 571) -> list[Path]:
    """uint16 flats: vignetting x dust, level drifting frame to frame, shot noise."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"flat_{i:04d}.fits" for i in range(1, count + 1)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    rows, cols = shape
    y = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, cols, dtype=np.float32)[None, :]
    vignette = (1.0 - 0.25 * (x * x + y * y)).astype(np.float32)
    for i, p in enumerate(paths):
        level = 24000.0 * (1.0 + 0.05 * np.sin(i))
        signal = level * vignette
        frame = signal + rng.standard_normal(shape, dtype=np.float32) * np.sqrt(signal)
        data = np.clip(np.rint(frame), 0, 65535).astype(np.uint16)
        hdr = fits.Header({"IMAGETYP": "Flat Field", "EXPTIME": 2.0, "FILTER": "L"})
        fits.PrimaryHDU(data, hdr).writeto(p, overwrite=True)
    return paths


# --- tools --------------------------------------------------------------------------------


def run_siril(inputs: list[Path], work: Path, name: str, rej: str, threads: int) -> Run:
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not (work / f"{name}_.seq").exists():
        for i, src in enumerate(inputs, start=1):
            link = work / f"src_{i:05d}.fits"
            link.unlink(missing_ok=True)
            link.symlink_to(src.resolve())
        (work / "convert.ssf").write_text(f"requires 1.0.0\nsetcpu {threads}\nconvert {name}_ -out=.\n")
        run_child(["siril-cli", "-d", str(work), "-s", str(work / "convert.ssf")], cwd=work)
    out = work / f"siril_{name}_{rej}.fit"
    script = f"requires 1.0.0\nsetcpu {threads}\nstack {name}_ rej {rej} 3 3 -nonorm -out={out.stem}\n"
    (work / "stack.ssf").write_text(script)
    seconds, rss = run_child(["siril-cli", "-d", str(work), "-s", str(work / "stack.ssf")], cwd=work)
    return Run("siril", f"{name} rej {rej}", seconds, rss, out)


_CCDPROC = """
import sys, numpy as np, ccdproc
from astropy.stats import mad_std
files, out = sys.argv[2:], sys.argv[1]
ccd = ccdproc.combine(files, method="average", unit="adu", sigma_clip=True,
                      sigma_clip_low_thresh=3, sigma_clip_high_thresh=3,
                      sigma_clip_func=np.ma.median, sigma_clip_dev_func=np.ma.std, dtype=np.float32)
ccd.write(out, overwrite=True)
"""


def run_ccdproc(inputs: list[Path], out: Path) -> Run:
    seconds, rss = run_child([PY, "-c", _CCDPROC, str(out), *map(str, inputs)])
    return Run("ccdproc", "sigma 3/3 (1 iter)", seconds, rss, out)


def run_obsagent(inputs: list[Path], out: Path, rej: str, threads: int, cache: Path, extra: list[str]) -> Run:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    cmd = [str(Path(PY).parent / "obsagent"), "stack", *map(str, inputs), "-o", str(out), "--rejection", rej]
    cmd += ["--low", "3", "--high", "3", "--threads", str(threads), "--json", *extra]
    seconds, rss = run_child(cmd, env=env)
    return Run("obsagent", f"{rej} 3/3", seconds, rss, out)


_IO_PROBE = """
import sys, time, resource, numpy as np
from astropy.io import fits
from agent.stacking.frames import open_fits
how, files = sys.argv[1], sys.argv[2:]
srcs = [open_fits(f) for f in files]
rows, cols = srcs[0].shape
band = 128
buf = np.empty((len(files), band, cols), np.uint16)
start = time.perf_counter()
if how == "preadv":
    for r0 in range(0, rows, band):
        r1 = min(rows, r0 + band)
        for i, s in enumerate(srcs):
            s.read_rows(r0, r1, buf[i, : r1 - r0])
elif how == "numpy-memmap":
    maps = [np.memmap(s.path, dtype=">i2", mode="r", offset=s.data_offset, shape=s.shape) for s in srcs]
    for r0 in range(0, rows, band):
        r1 = min(rows, r0 + band)
        for i, m in enumerate(maps):
            buf[i, : r1 - r0] = m[r0:r1].view(np.uint16)
else:  # astropy memmap, raw stored integers (BZERO left to the kernel)
    hdus = [fits.open(f, memmap=True, do_not_scale_image_data=True) for f in files]
    datas = [h[0].data for h in hdus]
    for r0 in range(0, rows, band):
        r1 = min(rows, r0 + band)
        for i, d in enumerate(datas):
            buf[i, : r1 - r0] = d[r0:r1].view(np.uint16)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def measure_io(files: list[Path]) -> None:
    """Read every row band of every frame once with each strategy (warm page cache)."""
    print("\n## reading row bands (128 rows) of all frames once")
    for how in ("preadv", "numpy-memmap", "astropy-memmap"):
        out = subprocess.run(
            [PY, "-c", _IO_PROBE, how, *map(str, files)], capture_output=True, text=True, check=True
        )
        seconds, rss = map(float, out.stdout.split())
        print(f"{how:<16} {seconds:6.2f} s   peak RSS {rss:6.0f} MB")


def load(run: Run) -> np.ndarray:
    assert run.output is not None
    data = fits.getdata(run.output).astype(np.float64)
    header = fits.getheader(run.output)
    if run.tool == "siril" or "ADUSCALE" in header:  # both write float32 ADU / 65535
        data *= float(header.get("ADUSCALE", 65535.0))
    return data


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a - b)
    d = d[np.isfinite(d)]
    return {"median": float(np.median(d)), "p99.9": float(np.percentile(d, 99.9)), "max": float(d.max())}


def report(title: str, runs: list[Run], pairs: list[tuple[Run, Run]]) -> dict[str, object]:
    base = next(r for r in runs if r.tool == "obsagent" and "first call" not in r.case)
    print(f"\n## {title}")
    print(
        f"{'tool':<10} {'case':<32} {'wall s':>8} {'peak RSS MB':>12} {'time / obsagent':>16} {'RSS / obsagent':>15}"
    )
    for r in runs:
        print(
            f"{r.tool:<10} {r.case:<32} {r.seconds:>8.2f} {r.peak_rss_mb:>12.0f} "
            f"{r.seconds / base.seconds:>16.2f} {r.peak_rss_mb / base.peak_rss_mb:>15.2f}"
        )
    result: dict[str, object] = {
        "runs": [r.__dict__ | {"output": str(r.output)} for r in runs],
        "agreement": [],
    }
    for a, b in pairs:
        ag = agreement(load(a), load(b))
        print(
            f"|{a.tool} {a.case}  -  {b.tool} {b.case}|: median {ag['median']:.4g}, "
            f"99.9th pct {ag['p99.9']:.4g}, max {ag['max']:.4g} ADU"
        )
        result["agreement"].append({"a": f"{a.tool} {a.case}", "b": f"{b.tool} {b.case}"} | ag)  # type: ignore[attr-defined]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--darks", type=int, default=30)
    ap.add_argument("--flats", type=int, default=50)
    ap.add_argument("--scale", type=float, default=1.0, help="linear size factor of the frames (quick runs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-flats", action="store_true")
    ap.add_argument("--skip-darks", action="store_true")
    ap.add_argument("--skip-ccdproc", action="store_true")
    ap.add_argument("--io", action="store_true", help="only compare ways of reading row bands (darks)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args()
    if shutil.which("siril-cli") is None:
        raise SystemExit("siril-cli not found: apt-get install -y siril")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "numba-cache"
    results: dict[str, object] = {}

    def scaled(shape: tuple[int, int]) -> tuple[int, int]:
        return (int(shape[0] * args.scale) // 2 * 2, int(shape[1] * args.scale) // 2 * 2)

    if args.io:
        shape = scaled(IMX294)
        files = make_darks(out / f"darks_{args.darks}x{shape[1]}x{shape[0]}", args.darks, shape)
        for p in files:
            p.read_bytes()
        measure_io(files)
        return 0
    if not args.skip_darks:
        shape = scaled(IMX294)
        tag = f"darks_{args.darks}x{shape[1]}x{shape[0]}"
        darks = make_darks(out / tag, args.darks, shape)
        for p in darks:  # warm page cache
            p.read_bytes()
        runs: list[Run] = []
        cold = Path(tempfile.mkdtemp(prefix="numba-cold-", dir=out))
        first = run_obsagent(
            darks, out / "obsagent_dark_w_cold.fits", "winsorized", args.threads, cold, ["--type", "dark"]
        )
        first.case = "winsorized 3/3 first call (JIT)"
        shutil.rmtree(cold)
        runs.append(first)
        ours_w = run_obsagent(
            darks, out / "obsagent_dark_w.fits", "winsorized", args.threads, cache, ["--type", "dark"]
        )
        ours_w = run_obsagent(
            darks, out / "obsagent_dark_w.fits", "winsorized", args.threads, cache, ["--type", "dark"]
        )
        runs.append(ours_w)
        siril_w = run_siril(darks, out / "siril_darks", "dark", "w", args.threads)
        runs.append(siril_w)
        ours_s = run_obsagent(
            darks, out / "obsagent_dark_s.fits", "sigma", args.threads, cache, ["--type", "dark"]
        )
        runs.append(ours_s)
        siril_s = run_siril(darks, out / "siril_darks", "dark", "s", args.threads)
        runs.append(siril_s)
        pairs = [(ours_w, siril_w), (ours_s, siril_s)]
        if not args.skip_ccdproc:
            cp = run_ccdproc(darks, out / "ccdproc_dark_s.fits")
            runs.append(cp)
            pairs.append((ours_s, cp))
        results[tag] = report(
            f"{args.darks} darks {shape[1]}x{shape[0]} uint16, {args.threads} threads", runs, pairs
        )

    if not args.skip_flats:
        shape = scaled(IMX571)
        tag = f"flats_{args.flats}x{shape[1]}x{shape[0]}"
        flats = make_flats(out / tag, args.flats, shape)
        for p in flats:
            p.read_bytes()
        runs = []
        ours = run_obsagent(
            flats,
            out / "obsagent_flat_w.fits",
            "winsorized",
            args.threads,
            cache,
            # raw integration, as Siril's -nonorm stack of the same files; a real master flat goes
            # through the recipe (calibrated by a dark flat or bias first), which Siril's run does not do
            ["--type", "light", "--normalize", "none"],
        )
        runs.append(ours)
        siril_f = run_siril(flats, out / "siril_flats", "flat", "w", args.threads)
        runs.append(siril_f)
        results[tag] = report(
            f"{args.flats} flats {shape[1]}x{shape[0]} uint16, {args.threads} threads",
            runs,
            [(ours, siril_f)],
        )

    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
