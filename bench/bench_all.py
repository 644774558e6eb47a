#!/usr/bin/env python3
"""`make bench`: every speed target of the Pi issue against its peer, in one run, as one table.

    .venv/bin/python bench/bench_all.py                # everything, 3 runs each (median)
    .venv/bin/python bench/bench_all.py --quick        # no 50-flat case, smaller library
    .venv/bin/python bench/bench_all.py --runs 5 --only stack,calibrate

Each figure is a whole child process: wall time around it and the kernel's peak RSS for that
child (`os.wait4`).  Peers run in the same invocation, interleaved with obsagent, so load from
other jobs falls on both; each row is the median of `--runs` runs.  Where the issue names no tool
(start-up, the library) the peer is the target itself.  Data live under bench/out/ (kept).
Never run as a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_stack import IMX294, IMX571, make_darks, make_flats  # noqa: E402

PY = sys.executable
OBSAGENT = str(Path(PY).parent / "obsagent")
LIGHTS = 5  # lights per calibration run (Siril makes no sequence of one image)


def run_child(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float]:
    """Run cmd; (wall seconds, peak RSS MB of the command).

    The peak comes from GNU time, the command's parent: a child forked straight from this
    process would start its peak at this process's size (numpy, astropy) before exec.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], env=env, cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout.decode(errors="replace"))
            raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
        return seconds, int(rss.read().split()[-1]) / 1024.0


@dataclass
class Row:
    """One benchmark: obsagent against its peer (medians), with the issue's targets."""

    case: str
    peer: str
    ours_s: float
    peer_s: float | None
    ours_mb: float
    peer_mb: float | None
    time_target: float | None  # max ours/peer (or seconds when peer_s is None)
    mem_target: float | None  # max MB

    @property
    def time_ratio(self) -> float | None:
        return self.ours_s / self.peer_s if self.peer_s else None

    @property
    def mem_ratio(self) -> float | None:
        return self.ours_mb / self.peer_mb if self.peer_mb else None

    def met(self) -> str:
        ok = True
        if self.time_target is not None:
            measured = self.time_ratio if self.peer_s else self.ours_s
            ok &= measured is not None and measured <= self.time_target
        if self.mem_target is not None:
            ok &= self.ours_mb <= self.mem_target
        return "yes" if ok else "**no**"


def median_runs(runs: int, *fns: Callable[[], tuple[float, float]]) -> list[tuple[float, float]]:
    """Run each fn `runs` times, interleaved; (median seconds, median peak MB) per fn."""
    results: list[list[tuple[float, float]]] = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            results[i].append(fn())
    return [(statistics.median(s for s, _ in r), statistics.median(m for _, m in r)) for r in results]


def evict(paths: list[Path]) -> None:
    """Drop the files' pages from the page cache (clean pages only: written files are fsynced)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


_READ_ONCE = """
import os, sys, time
start = time.perf_counter()
buf = bytearray(1 << 22)
for p in sys.argv[1:]:
    with open(p, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
print(time.perf_counter() - start)
"""


_READ_BANDS = """
import os, sys, time
from agent.stacking.frames import open_fits
band_bytes, paths = int(sys.argv[1]), sys.argv[2:]
srcs = [open_fits(p) for p in paths]
start = time.perf_counter()
rows, cols = srcs[0].shape
band = max(1, band_bytes // (len(srcs) * cols * 2))
buf = bytearray(band * cols * 2)
fds = [os.open(s.path, os.O_RDONLY) for s in srcs]
for r0 in range(0, rows, band):
    n = (min(rows, r0 + band) - r0) * cols * 2
    for fd, s in zip(fds, srcs):
        os.preadv(fd, [memoryview(buf)[:n]], s.data_offset + r0 * cols * 2)
print(time.perf_counter() - start)
"""


def script_time(code: str, *argv: str) -> tuple[float, float]:
    """(seconds the script reports for its own work, peak RSS MB): start-up left out."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, PY, "-c", code, *argv],
                             check=True, capture_output=True, text=True)  # fmt: skip
        return float(out.stdout.split()[-1]), int(rss.read().split()[-1]) / 1024.0


def env_with_cache(cache: Path) -> dict[str, str]:
    return dict(os.environ, NUMBA_CACHE_DIR=str(cache))


# --- stacking ---------------------------------------------------------------------------------


def siril_stack(inputs: list[Path], work: Path, name: str, rej: str, threads: int) -> tuple[float, float]:
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not (work / f"{name}_.seq").exists():
        for i, src in enumerate(inputs, start=1):
            link = work / f"src_{i:05d}.fits"
            link.unlink(missing_ok=True)
            link.symlink_to(src.resolve())
        (work / "convert.ssf").write_text(f"requires 1.0.0\nsetcpu {threads}\nconvert {name}_ -out=.\n")
        run_child(["siril-cli", "-d", str(work), "-s", str(work / "convert.ssf")], cwd=work)
    script = work / f"stack_{rej}.ssf"
    script.write_text(
        f"requires 1.0.0\nsetcpu {threads}\nstack {name}_ rej {rej} 3 3 -nonorm -out=siril_{name}_{rej}\n"
    )
    return run_child(["siril-cli", "-d", str(work), "-s", str(script)], cwd=work)


def ours_stack(
    inputs: list[Path], out: Path, rej: str, threads: int, cache: Path, extra: list[str]
) -> tuple[float, float]:
    cmd = [OBSAGENT, "stack", *map(str, inputs), "-o", str(out), "--rejection", rej]
    cmd += ["--low", "3", "--high", "3", "--threads", str(threads), "--json", *extra]
    return run_child(cmd, env=env_with_cache(cache))


def bench_stack(args: argparse.Namespace, out: Path, cache: Path) -> list[Row]:
    rows = []
    darks = make_darks(out / "darks_30x4144x2822", 30, IMX294)
    warm(darks)
    for rej, siril_rej, label in (("winsorized", "w", "winsorized 3/3"), ("sigma", "s", "sigma 3/3")):
        ours_stack(darks, out / "bench_dark.fits", rej, args.threads, cache, ["--type", "dark"])  # kernels
        (o_s, o_mb), (p_s, p_mb) = median_runs(
            args.runs,
            lambda rej=rej: ours_stack(
                darks, out / "bench_dark.fits", rej, args.threads, cache, ["--type", "dark"]
            ),
            lambda siril_rej=siril_rej: siril_stack(
                darks, out / "siril_darks", "dark", siril_rej, args.threads
            ),
        )
        rows.append(Row(f"master dark, 30 x 4144x2822, {label}", f"siril-cli `rej {siril_rej} 3 3`",
                        o_s, p_s, o_mb, p_mb, 0.45, 400))  # fmt: skip
    if not args.quick:
        flats = make_flats(out / "flats_50x6248x4176", 50, IMX571)
        warm(flats)
        extra = ["--type", "light", "--normalize", "none"]  # raw integration, as Siril's -nonorm
        (o_s, o_mb), (p_s, p_mb) = median_runs(
            args.runs,
            lambda: ours_stack(flats, out / "bench_flat.fits", "winsorized", args.threads, cache, extra),
            lambda: siril_stack(flats, out / "siril_flats", "flat", "w", args.threads),
        )
        rows.append(Row("50 flats 6248x4176, winsorized 3/3", "siril-cli `rej w 3 3`",
                        o_s, p_s, o_mb, p_mb, 0.30, 450))  # fmt: skip
    return rows


def bench_first_call(args: argparse.Namespace, out: Path, cache: Path) -> list[Row]:
    """A fresh install: `make setup`'s warm-up into an empty cache, then the first stack."""
    darks = make_darks(out / "darks_30x4144x2822", 30, IMX294)[:10]
    warm(darks)
    firsts = []
    for _ in range(args.runs):
        fresh = Path(tempfile.mkdtemp(prefix="numba-fresh-", dir=out))
        subprocess.run([PY, "-m", "agent.stacking.warmup"], env=env_with_cache(fresh), check=True,
                       capture_output=True)  # fmt: skip
        firsts.append(
            ours_stack(darks, out / "bench_first.fits", "winsorized", args.threads, fresh, ["--type", "dark"])
        )
        shutil.rmtree(fresh)
    ((w_s, w_mb),) = median_runs(
        args.runs,
        lambda: ours_stack(
            darks, out / "bench_first.fits", "winsorized", args.threads, cache, ["--type", "dark"]
        ),
    )
    f_s = statistics.median(s for s, _ in firsts)
    f_mb = statistics.median(m for _, m in firsts)
    return [Row("first stack after install (10 darks), warm-up done", "obsagent, warm cache",
                f_s, w_s, f_mb, w_mb, 1.5, None)]  # fmt: skip


def bench_cold_cache(args: argparse.Namespace, out: Path, cache: Path) -> list[Row]:
    """Inputs evicted from the page cache: a master build against reading the inputs once."""
    darks = make_darks(out / "darks_30x4144x2822", 30, IMX294)

    def build() -> tuple[float, float]:
        evict(darks)
        return ours_stack(
            darks, out / "bench_cold.fits", "winsorized", args.threads, cache, ["--type", "dark"]
        )

    def read_once() -> tuple[float, float]:
        evict(darks)
        return script_time(_READ_ONCE, *map(str, darks))

    def build_warm() -> tuple[float, float]:
        warm(darks)
        return ours_stack(
            darks, out / "bench_cold.fits", "winsorized", args.threads, cache, ["--type", "dark"]
        )

    def read_bands() -> tuple[float, float]:
        evict(darks)
        from agent.stacking.combine import _BAND_MAX_BYTES

        return script_time(_READ_BANDS, str(_BAND_MAX_BYTES), *map(str, darks))

    (o_s, o_mb), (p_s, p_mb), (w_s, w_mb), (b_s, b_mb) = median_runs(
        args.runs, build, read_once, build_warm, read_bands
    )
    return [
        Row("master dark (30 x 12 MP), inputs evicted (POSIX_FADV_DONTNEED)", "reading the inputs once (cold)",
            o_s, p_s, o_mb, p_mb, 1.3, None),
        Row("the same, inputs evicted", "the same build, inputs in the page cache", o_s, w_s, o_mb, w_mb, None, None),
        Row("reading the inputs in the build's band order (cold)", "reading each file once in turn (cold)",
            b_s, p_s, b_mb, p_mb, None, None),
    ]  # fmt: skip


# --- light calibration --------------------------------------------------------------------------


def calibration_set(out: Path, shape: tuple[int, int], tag: str) -> dict[str, Path]:
    """A light, obsagent masters (with defect maps) and the same masters scaled to [0, 1] for Siril."""
    folder = out / f"calib_{tag}"
    names = ("dark", "flat", "siril_dark", "siril_flat", *(f"light{i}" for i in range(LIGHTS)))
    files = {k: folder / f"{k}.fits" for k in names}
    if all(p.exists() for p in files.values()):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    from agent.stacking.masters import CalibrationMaster  # noqa: F401 - masters are written with maps
    from agent.stacking.recipes import build_master

    rng = np.random.default_rng(11)
    rows, cols = shape
    hdr = {
        "EXPTIME": 120.0,
        "GAIN": 120,
        "OFFSET": 30,
        "CCD-TEMP": -10.0,
        "BAYERPAT": "RGGB",
        "SENSKIND": "cmos",
    }
    pattern = (
        800.0 + rng.normal(0, 3, (1, cols)) + (rng.random(shape) < 5e-4) * rng.uniform(200, 20000, shape)
    )
    darks = []
    for i in range(5):
        p = folder / f"raw_dark_{i}.fits"
        data = np.clip(np.rint(pattern + rng.normal(0, 12, shape)), 0, 65535).astype(np.uint16)
        fits.PrimaryHDU(data, fits.Header({"IMAGETYP": "Dark Frame", **hdr})).writeto(p, overwrite=True)
        darks.append(p)
    dark = build_master("dark", darks, method="winsorized", threads=2)
    dark.write(files["dark"])
    y = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, cols, dtype=np.float32)[None, :]
    vignette = 1.0 - 0.25 * (x * x + y * y)
    flat = (vignette / vignette.mean()).astype(np.float32)
    flat_hdr = fits.Header({"IMAGETYP": "Master Flat", "EXPTIME": 2.0, "BAYERPAT": "RGGB", "FLATCAL": "darkflat",
                            "DATAMAX": 65535})  # fmt: skip
    fits.PrimaryHDU(flat * np.float32(20000.0), flat_hdr).writeto(files["flat"], overwrite=True)
    for i in range(LIGHTS):
        light = pattern + 1500.0 * vignette + rng.normal(0, 20, shape)
        light_data = np.clip(np.rint(light), 0, 65535).astype(np.uint16)
        fits.PrimaryHDU(light_data, fits.Header({"IMAGETYP": "Light Frame", **hdr})).writeto(
            files[f"light{i}"], overwrite=True
        )
    fits.PrimaryHDU((dark.data / 65535.0).astype(np.float32)).writeto(files["siril_dark"], overwrite=True)
    fits.PrimaryHDU(flat * np.float32(20000.0 / 65535.0)).writeto(files["siril_flat"], overwrite=True)
    for p in darks:
        p.unlink()
    return files


def siril_preprocess(files: dict[str, Path], work: Path) -> tuple[float, float]:
    work = work.resolve()
    if not (work / "light_.seq").exists():
        shutil.rmtree(work, ignore_errors=True)  # convert takes every file of the folder
        work.mkdir(parents=True)
        for i in range(LIGHTS):
            (work / f"src_{i + 1:05d}.fits").symlink_to(files[f"light{i}"].resolve())
        (work / "convert.ssf").write_text("requires 1.0.0\nsetcpu 2\nconvert light_ -out=.\n")
        run_child(["siril-cli", "-d", str(work), "-s", str(work / "convert.ssf")], cwd=work)
    script = work / "preprocess.ssf"
    script.write_text(
        f"requires 1.0.0\nsetcpu 2\npreprocess light_ -dark={files['siril_dark'].resolve()} "
        f"-flat={files['siril_flat'].resolve()}\n"
    )
    return run_child(["siril-cli", "-d", str(work), "-s", str(script)], cwd=work)


def ours_calibrate(files: dict[str, Path], work: Path, cache: Path) -> tuple[float, float]:
    lights = [str(files[f"light{i}"]) for i in range(LIGHTS)]
    cmd = [OBSAGENT, "calibrate", *lights, "-o", str(work), "--dark", str(files["dark"]),
           "--flat", str(files["flat"]), "--json"]  # fmt: skip
    return run_child(cmd, env=env_with_cache(cache))


def bench_calibrate(args: argparse.Namespace, out: Path, cache: Path) -> list[Row]:
    rows = []
    for shape, tag in ((IMX294, "12MP 4144x2822"), (IMX571, "26MP 6248x4176")):
        files = calibration_set(out, shape, tag.split()[0])
        warm(list(files.values()))
        work = out / f"calibrated_{tag.split()[0]}"
        ours_calibrate(files, work, cache)
        (o_s, o_mb), (p_s, p_mb) = median_runs(
            args.runs,
            lambda files=files, work=work: ours_calibrate(files, work, cache),
            lambda files=files, tag=tag: siril_preprocess(files, out / f"siril_calib_{tag.split()[0]}"),
        )
        rows.append(Row(f"calibrate {LIGHTS} {tag} lights, dark + flat (one process)",
                        "siril-cli `preprocess -dark -flat`", o_s, p_s, o_mb, p_mb, 0.7, 250))  # fmt: skip
    return rows


# --- start-up and the library --------------------------------------------------------------------


def bench_startup(args: argparse.Namespace, out: Path, cache: Path) -> list[Row]:
    ((o_s, o_mb),) = median_runs(max(args.runs, 5), lambda: run_child([OBSAGENT, "--help"]))
    return [Row("`obsagent --help`", "target 0.3 s", o_s, None, o_mb, None, 0.3, None)]


_FILL = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench_library import fill
from agent.library.store import Library
with Library(Path(sys.argv[1])) as lib:
    fill(lib, int(sys.argv[2]))
"""

_NEEDS = """
import sys, time, statistics
from pathlib import Path
from agent.library.keys import LibraryPolicy
from agent.library.needs import needs
from agent.library.store import Library
with Library(Path(sys.argv[1])) as lib:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        needs(lib, LibraryPolicy(), light_days=30)
        times.append(time.perf_counter() - t0)
print(statistics.median(times))
"""


def bench_library(args: argparse.Namespace, out: Path, cache: Path) -> list[Row]:
    frames = 5_000 if args.quick else 50_000
    data = out / f"library_{frames}"
    if not (data / ".filled").exists():
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        subprocess.run([PY, "-c", _FILL, str(data), str(frames), str(ROOT / "bench")], check=True)
        (data / ".filled").touch()
    inner = []
    for _ in range(args.runs):
        res = subprocess.run([PY, "-c", _NEEDS, str(data)], check=True, capture_output=True, text=True)
        inner.append(float(res.stdout.split()[-1]))
    ((o_s, o_mb),) = median_runs(
        args.runs, lambda: run_child([OBSAGENT, "library", "needs", "--data", str(data), "--json"])
    )
    return [
        Row(f"`needs()` over {frames} frames (in process)", "target 0.1 s", statistics.median(inner), None,
            0.0, None, 0.1, None),
        Row(f"`obsagent library needs`, {frames} frames", "target 1 s", o_s, None, o_mb, None, 1.0, None),
    ]  # fmt: skip


# --- report ------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_gb = int(f.readline().split()[1]) / 2**20
    siril = subprocess.run(["siril-cli", "--version"], capture_output=True, text=True).stdout.strip()
    import numba

    load = os.getloadavg()
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GB RAM, {platform.platform()}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, {siril}; "
        f"load average at the start {load[0]:.2f}"
    )


def fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def table(rows: list[Row], runs: int, description: str) -> str:
    lines = [
        f"Machine: {description}. Median of {runs} runs, obsagent and peer interleaved in the same run.",
        "",
        "| benchmark | peer | obsagent s | peer s | time ratio (target) | obsagent MB | peer MB | RSS ratio "
        "| MB target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        target = "" if r.time_target is None else f" (≤ {r.time_target:g}{'' if r.peer_s else ' s'})"
        lines.append(
            f"| {r.case} | {r.peer} | {r.ours_s:.2f} | {fmt(r.peer_s, '.2f')} | "
            f"{fmt(r.time_ratio, '.2f')}{target} | {r.ours_mb:.0f} | {fmt(r.peer_mb, '.0f')} | "
            f"{fmt(r.mem_ratio, '.2f')} | {fmt(r.mem_target, '.0f')} | {r.met()} |"
        )
    return "\n".join(lines)


BENCHES = {
    "startup": bench_startup,
    "library": bench_library,
    "stack": bench_stack,
    "first": bench_first_call,
    "cold": bench_cold_cache,
    "calibrate": bench_calibrate,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="skip the 50-flat case; 5,000-frame library")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHES)}")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args()
    if shutil.which("siril-cli") is None:
        raise SystemExit("siril-cli not found: apt-get install -y siril (make bench installs it)")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "numba-cache"
    subprocess.run(
        [PY, "-m", "agent.stacking.warmup"], env=env_with_cache(cache), check=True, capture_output=True
    )
    description = machine()
    chosen = args.only.split(",") if args.only else list(BENCHES)
    rows: list[Row] = []
    for name in chosen:
        start = time.perf_counter()
        try:
            rows += BENCHES[name](args, out, cache)
        except (subprocess.CalledProcessError, SystemExit, ImportError) as exc:
            print(f"{name}: failed ({exc})", file=sys.stderr)
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    text = table(rows, args.runs, description)
    print(text)
    (out / "bench_table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
