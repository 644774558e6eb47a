"""What a user can get wrong, table by table: each case runs the real `obsagent` command line on one
mistake and expects exit 2 with one line naming it (or exit 0 where a user would expect the input to be
taken), never a traceback, and every input file byte for byte as it was.

Most cases call `agent.cli.main` in this process (the imports are paid once); a representative few
run `python -m agent.cli` in a subprocess, as a user would. A sequence file's errors are a headline and
one line per problem: a case with one mistake must give exactly one problem line, naming its key.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from astropy.io import fits

import agent.cli as cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROOT_USER = os.geteuid() == 0

# --------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        # libindi's own chatter on stderr (C++, not ours) is left out
        return [line for line in self.err.splitlines() if line.strip() and "INDI::BaseClient" not in line]


def run_inprocess(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    got = capsys.readouterr()
    return Outcome(code, got.out, got.err)


def run_subprocess(argv: list[str], cwd: Path) -> Outcome:
    env = {**os.environ, "XDG_STATE_HOME": str(cwd / "state"), "OBSAGENT_DATA": str(cwd / "default-data")}
    done = subprocess.run([sys.executable, "-m", "agent.cli", *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)  # fmt: skip
    return Outcome(done.returncode, done.stdout, done.stderr)


def digests(root: Path) -> dict[str, str]:
    """Every input file under `root` and its hash (folders are walked; unreadable ones skipped)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if path.is_file() and not path.is_symlink():
            try:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                out[str(path)] = "unreadable"
    return out


def unchanged(before: dict[str, str], after: dict[str, str]) -> bool:
    """Every file that was there is there, byte for byte (new companions such as SQLite's -shm may appear)."""
    return all(after.get(path) == digest for path, digest in before.items())


def check(result: Outcome, code: int, words: tuple[str, ...], sequence_problem: bool = False) -> None:
    assert "Traceback" not in result.err + result.out, result.err
    assert result.code == code, f"exit {result.code}, wanted {code}\n{result.err}"
    if code == 0:
        return
    lines = result.lines()
    if sequence_problem:  # headline + exactly one `file:line: key: message`
        assert len(lines) == 2, result.err
        assert "1 problem" in lines[0] and "obsagent validate" in lines[0], lines[0]
        line = lines[1]
    else:
        assert len(lines) == 1, result.err
        line = lines[0]
    assert "error" in result.err
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"


# ----------------------------------------------------------------------------------- sequence files

BASE: dict[str, Any] = {
    "version": 1,
    "site": {"name": "Backyard", "latitude": 52.5, "longitude": 13.4, "elevation": 40,
             "timezone": "Europe/Berlin", "horizon": 10},
    "indi": {"address": "localhost:7624",
             "devices": {"camera": "CCD Simulator", "wheel": "Filter Simulator", "flat_panel": "Light Box"}},
    "camera": {"sensor": "cmos", "set_point": -10, "gain": 120, "offset": 30, "binning": 1},
    "filters": ["L", "Ha"],
    "targets": [
        {"name": "M31", "priority": 1, "min_altitude": 30,
         "exposures": [{"filter": "L", "exposure": 120, "count": 10}, {"filter": "Ha", "exposure": 300, "count": 4}]},
        {"name": "M42", "window": {"start": "21:00", "end": "04:00"},
         "exposures": [{"filter": "L", "exposure": 60, "count": 5}]},
    ],
    "calibration": {"flats": {"source": "panel"}},
}  # fmt: skip
DELETE = object()


def mutated(path: str, value: object) -> str:
    """The base sequence with one key set (or deleted), as YAML."""
    data = yaml.safe_load(yaml.safe_dump(BASE))
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = data
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


# (what the user did, key set, value, words the problem line names)
KEY_MISTAKES: list[tuple[str, str, object, tuple[str, ...]]] = [
    ("latitude written as a word", "site.latitude", "north", ("site.latitude",)),
    ("latitude beyond the pole", "site.latitude", 95, ("site.latitude",)),
    ("longitude beyond 180", "site.longitude", -200, ("site.longitude",)),
    ("latitude left out", "site.latitude", DELETE, ("site.latitude", "missing")),
    ("elevation as text", "site.elevation", "high", ("site.elevation",)),
    ("time zone misspelt", "site.timezone", "Europe/Berln", ("site.timezone",)),
    ("time zone invented", "site.timezone", "Mars/Olympus_Mons", ("site.timezone",)),
    ("horizon above the zenith", "site.horizon", 95, ("site.horizon",)),
    ("site given as a list", "site", [52.5, 13.4], ("site",)),
    ("site key misspelt", "site.lattitude", 52.5, ("site.lattitude", "unknown key")),
    ("INDI address without port", "indi.address", "localhost", ("indi.address",)),
    ("INDI port out of range", "indi.address", "localhost:99999", ("indi.address",)),
    ("INDI address as a URL", "indi.address", "http://localhost:7624", ("indi.address",)),
    ("camera device left out", "indi.devices.camera", DELETE, ("indi.devices.camera", "missing")),
    ("device kind unknown", "indi.devices.focuser", "Focuser Simulator", ("indi.devices.focuser", "unknown key")),
    ("sensor kind misspelt", "camera.sensor", "cmoss", ("camera.sensor",)),
    ("sensor kind left out", "camera.sensor", DELETE, ("camera.sensor", "missing")),
    ("set-point colder than any cooler", "camera.set_point", -100, ("camera.set_point",)),
    ("set-point as a word", "camera.set_point", "cold", ("camera.set_point",)),
    ("set-point tolerance of zero", "camera.set_point_tolerance", 0, ("camera.set_point_tolerance",)),
    ("negative gain", "camera.gain", -5, ("camera.gain",)),
    ("offset as a word", "camera.offset", "high", ("camera.offset",)),
    ("binning zero", "camera.binning", 0, ("camera.binning",)),
    ("fractional binning", "camera.binning", 1.5, ("camera.binning",)),
    ("binning written 2x2", "camera.binning", "2x2", ("camera.binning",)),
    ("bit depth no camera has", "camera.bit_depth", 13, ("camera.bit_depth",)),
    ("warmer set-point as maybe", "camera.allow_warmer_set_point", "maybe", ("camera.allow_warmer_set_point",)),
    ("camera key misspelt", "camera.temperature", -10, ("camera.temperature", "unknown key")),
    ("no filters listed", "filters", [], ("filters",)),
    ("filters as a mapping", "filters", {"L": 1}, ("filters",)),
    ("target filter not in the wheel", "targets.0.exposures.0.filter", "R", ("targets.0.exposures.0.filter", "wheel")),
    ("target not in the catalogue", "targets.0.name", "M999", ("targets.0.name",)),
    ("same target twice", "targets.1.name", "M31", ("targets.1.name", "twice")),
    ("right ascension without declination", "targets.0.ra", "00h42m44s", ("targets.0",)),
    ("right ascension past 24h", "targets.0.ra", "25h00m00s", ("targets.0.ra",)),
    ("declination past the pole", "targets.0.dec", "+95d00m00s", ("targets.0",)),
    ("exposure of zero seconds", "targets.0.exposures.0.exposure", 0, ("targets.0.exposures.0.exposure",)),
    ("negative exposure", "targets.0.exposures.0.exposure", -5, ("targets.0.exposures.0.exposure",)),
    ("two-hour exposure", "targets.0.exposures.0.exposure", 7200, ("targets.0.exposures.0.exposure",)),
    ("exposure with a unit", "targets.0.exposures.0.exposure", "120s", ("targets.0.exposures.0.exposure",)),
    ("negative frame count", "targets.0.exposures.0.count", -1, ("targets.0.exposures.0.count",)),
    ("frame count as a word", "targets.0.exposures.0.count", "ten", ("targets.0.exposures.0.count",)),
    ("frame count left out", "targets.0.exposures.0.count", DELETE, ("targets.0.exposures.0.count", "missing")),
    ("per-night cap of zero", "targets.0.exposures.0.per_night", 0, ("targets.0.exposures.0.per_night",)),
    ("exposure key misspelt", "targets.0.exposures.0.exposure_time", 120, ("exposure_time", "unknown key")),
    ("minimum altitude above the zenith", "targets.0.min_altitude", 95, ("targets.0.min_altitude",)),
    ("negative moon separation", "targets.0.min_moon_separation", -1, ("targets.0.min_moon_separation",)),
    ("window at 25 o'clock", "targets.1.window.start", "25:00", ("targets.1.window.start",)),
    ("window as a word", "targets.1.window.start", "dusk", ("targets.1.window.start",)),
    ("window without end", "targets.1.window.end", DELETE, ("targets.1.window.end", "missing")),
    ("targets as a mapping", "targets", {"name": "M31"}, ("targets",)),
    ("target without exposures", "targets.0.exposures", DELETE, ("targets.0.exposures", "missing")),
    ("flat source unknown", "calibration.flats.source", "twilight", ("calibration.flats.source",)),
    ("flat level above full scale", "calibration.flats.adu_target", 1.5, ("calibration.flats.adu_target",)),
    ("flat tolerance wider than level", "calibration.flats.adu_tolerance", 0.5, ("calibration.flats",)),
    ("sun band upside down", "calibration.flats.sun_band", {"upper": -10, "lower": -2}, ("sun_band",)),
    ("flat exposures inverted", "calibration.flats.exposure_min", 60, ("calibration.flats.exposure_min",)),
    ("flat cadence unknown", "calibration.flats.cadence", "weekly", ("calibration.flats.cadence",)),
    ("flat cadence for a filter not in the wheel", "calibration.flats.filter_cadence", {"OIII": 3}, ("OIII", "wheel")),
    ("dark-flats switch as text", "calibration.flats.dark_flats", "sometimes", ("calibration.flats.dark_flats",)),
    ("dark gap of zero minutes", "calibration.darks.min_gap_minutes", 0, ("calibration.darks.min_gap_minutes",)),
    ("negative bias count", "calibration.bias.count", -1, ("calibration.bias.count",)),
    ("master of zero frames", "calibration.masters.dark", {"min_frames": 0, "max_age_days": 30}, ("masters.dark.min_frames",)),
    ("master age negative", "calibration.masters.flat", {"min_frames": 20, "max_age_days": -1}, ("masters.flat.max_age_days",)),
    ("master rule half given", "calibration.masters.bias", {"min_frames": 20}, ("masters.bias.max_age_days", "missing")),
    ("temperature tolerance zero", "calibration.temperature_tolerance", 0, ("calibration.temperature_tolerance",)),
    ("clipped percent above 100", "calibration.max_clipped_percent", 150, ("calibration.max_clipped_percent",)),
    ("looser temperature not looser", "calibration.allow_looser", {"temperature_within": 0.5}, ("temperature_within",)),
    ("scaled darks as text", "calibration.allow_looser", {"scaled_darks": "yes please"}, ("allow_looser.scaled_darks",)),
    ("panel flats without a panel", "indi.devices.flat_panel", DELETE, ("calibration.flats.source", "flat_panel")),
    ("calibration key singular", "calibration.flat", {"source": "panel"}, ("calibration.flat", "unknown key")),
    ("rejection method unknown", "stacking", {"rejection": "kappa"}, ("stacking.rejection",)),
    ("combine by sum", "stacking", {"combine": "sum"}, ("stacking.combine",)),
    ("stacking memory of zero", "stacking", {"memory_limit_mb": 0}, ("stacking.memory_limit_mb",)),
    ("schedule overhead negative", "schedule", {"frame_overhead": -1}, ("schedule.frame_overhead",)),
    ("schedule key misspelt", "schedule", {"max_sun_alt": -18}, ("schedule.max_sun_alt", "unknown key")),
    ("sync over ftp", "sync", {"url": "ftp://nas/masters"}, ("sync.url",)),
    ("sync over http", "sync", {"url": "https://example.org/masters"}, ("sync.url",)),
    ("sync token nobody reads", "sync", {"url": "file:///srv/masters", "token_env": "TOKEN"}, ("sync.token_env",)),
    ("sync without url", "sync", {}, ("sync.url", "missing")),
    ("free-space floor negative", "housekeeping", {"min_free_mb": -1}, ("housekeeping.min_free_mb",)),
    ("notification url not a url", "notifications", {"urls": ["not a url"]}, ("notifications.urls",)),
    ("notification event unknown", "notifications", {"urls": ["json://localhost:9/x"], "events": ["party"]}, ("notifications.events",)),
    ("safety verdict unknown", "safety", {"weather": ["Weather Simulator"], "unsafe_on": "sometimes"}, ("safety.unsafe_on",)),
    ("version 2", "version", 2, ("version", "version: 1")),
    ("version left out", "version", DELETE, ("version", "missing")),
    ("section misspelt", "target", [{"name": "M31"}], ("target", "unknown key")),
]  # fmt: skip


@pytest.mark.parametrize(("what", "key", "value", "words"), KEY_MISTAKES, ids=[c[0] for c in KEY_MISTAKES])
def test_sequence_key_mistake(tmp_path: Path, capsys, what: str, key: str, value: object, words: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    seq = tmp_path / "in" / "night.yaml"
    seq.parent.mkdir()
    seq.write_text(mutated(key, value))
    before = digests(tmp_path / "in")
    check(run_inprocess(["validate", str(seq)], capsys), 2, words, sequence_problem=True)
    assert digests(tmp_path / "in") == before


def _bomb() -> str:
    lines = ["version: 1", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join([*lines, "filters: *i", ""])


# (what the user did, file content, exit code, words; a headline + line when `problem`)
FILE_MISTAKES: list[tuple[str, Callable[[], bytes], int, tuple[str, ...], bool]] = [
    ("empty file", lambda: b"", 2, ("empty",), True),
    ("only comments", lambda: b"# my night\n# to do\n", 2, ("empty",), True),
    ("unclosed bracket", lambda: b"version: 1\nfilters: [L, R\n", 2, ("not valid YAML",), True),
    ("tab indentation", lambda: b"version: 1\nsite:\n\tlatitude: 52\n", 2, ("not valid YAML",), True),
    ("key given twice", lambda: mutated("version", 1).encode() + b"version: 1\n", 2, ("twice",), True),
    ("a list at the top", lambda: b"- version: 1\n- site: {}\n", 2, ("mapping",), True),
    ("a bare word", lambda: b"night\n", 2, ("mapping",), True),
    ("alias bomb", lambda: _bomb().encode(), 2, ("refused", "aliases"), True),
    ("nested forty deep", lambda: b"version: 1\nfilters: " + b"[" * 40 + b"]" * 40 + b"\n", 2, ("nested",), True),
    ("nested five thousand deep", lambda: b"version: 1\nfilters: " + b"[" * 5000 + b"]" * 5000 + b"\n", 2, ("nested",), True),
    ("alias inside itself", lambda: b"version: 1\nfilters: &f [L, *f]\n", 2, ("refers to",), True),
    ("a megabyte of YAML", lambda: b"# " + b"x" * (1 << 20) + b"\n", 2, ("KiB",), False),
    ("a binary file", lambda: bytes(range(256)) * 8, 2, ("binary",), False),
    ("a photo renamed .yaml", lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(512), 2, ("binary",), False),
    ("saved as Latin-1", lambda: mutated("version", 1).replace("Backyard", "Köln").encode("latin-1"), 2, ("UTF-8",), False),
    ("saved with a BOM", lambda: b"\xef\xbb\xbf" + mutated("version", 1).encode(), 0, (), False),
    ("Windows line endings", lambda: mutated("version", 1).replace("\n", "\r\n").encode(), 0, (), False),
    ("the shipped example", lambda: (EXAMPLES / "night.yaml").read_bytes(), 0, (), False),
]  # fmt: skip


@pytest.mark.parametrize(("what", "content", "code", "words", "problem"), FILE_MISTAKES,
                         ids=[c[0] for c in FILE_MISTAKES])  # fmt: skip
def test_sequence_file_mistake(tmp_path: Path, capsys, what, content, code, words, problem) -> None:  # type: ignore[no-untyped-def]
    seq = tmp_path / "in" / "night.yaml"
    seq.parent.mkdir()
    seq.write_bytes(content())
    before = digests(tmp_path / "in")
    check(run_inprocess(["validate", str(seq)], capsys), code, words, sequence_problem=problem)
    assert digests(tmp_path / "in") == before


@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_sequence_path_is_a_folder_or_missing(tmp_path: Path, capsys, command: str) -> None:  # type: ignore[no-untyped-def]
    check(run_inprocess([command, str(tmp_path)], capsys), 2, ("folder",))
    check(run_inprocess([command, str(tmp_path / "nigth.yaml")], capsys), 2, ("no such sequence file",))


# ------------------------------------------------------------------------------ FITS, folders, CLI

SHAPE = (24, 32)


def header(imagetyp: str = "Dark Frame", exposure: float = 60.0) -> fits.Header:
    h = fits.Header()
    h["IMAGETYP"], h["EXPTIME"], h["INSTRUME"] = imagetyp, exposure, "ZWO CCD ASI294MM Pro"
    h["GAIN"], h["OFFSET"], h["XBINNING"], h["YBINNING"], h["SET-TEMP"] = 120, 30, 1, 1, -10.0
    h["DATE-OBS"] = "2026-03-14T22:00:00.000"
    return h


def frame(path: Path, level: float = 1000.0, seed: int = 0, kind: str = "Dark Frame", data: Any = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.clip(np.random.default_rng(seed).normal(level, 5.0, SHAPE), 0, 65535).astype(np.uint16)
    fits.PrimaryHDU(data, header(kind)).writeto(path)
    return path


def darks(tmp: Path, n: int = 3) -> list[str]:
    return [str(frame(tmp / "in" / f"dark_{i}.fits", seed=i)) for i in range(n)]


def raw_file(tmp: Path, name: str, content: bytes) -> str:
    path = tmp / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return str(path)


def good_bytes(tmp: Path) -> bytes:
    return Path(frame(tmp / "scratch" / "good.fits")).read_bytes()


def fits_bytes(hdus: list[Any]) -> bytes:
    import io

    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def huge_claim() -> bytes:
    card = fits.Header()
    card["SIMPLE"], card["BITPIX"], card["NAXIS"], card["NAXIS1"], card["NAXIS2"] = True, 16, 2, 200000, 200000
    card["IMAGETYP"] = "Dark Frame"
    return card.tostring().encode() + b"\0" * 2880


def damaged_fz(tmp: Path) -> bytes:
    hdu = fits.CompImageHDU(np.random.default_rng(0).integers(900, 1100, SHAPE).astype(np.uint16), header())
    data = bytearray(fits_bytes([fits.PrimaryHDU(), hdu]))
    return bytes(data[: len(data) - 2000])


def stack_with(extra: Callable[[Path], str]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["stack", *darks(tmp), extra(tmp), "-o", str(tmp / "out" / "master.fits")]


# (what the user did, argv builder, exit code, words the line names)
Case = tuple[str, Callable[[Path], list[str]], int, tuple[str, ...]]
NAN = np.full(SHAPE, np.nan, np.float32)
FITS_MISTAKES: list[Case] = [
    ("stack a zero-byte file", stack_with(lambda t: raw_file(t, "empty.fits", b"")), 2, ("empty.fits",)),
    ("stack a truncated file", stack_with(lambda t: raw_file(t, "cut.fits", good_bytes(t)[:4000])), 2, ("cut.fits",)),
    ("stack a header without data", stack_with(lambda t: raw_file(t, "head.fits", good_bytes(t)[:2880])), 2, ("head.fits",)),
    ("stack a text file named .fits", stack_with(lambda t: raw_file(t, "notes.fits", b"my notes\n" * 50)), 2, ("notes.fits",)),
    ("stack a PNG named .fits", stack_with(lambda t: raw_file(t, "shot.fits", b"\x89PNG\r\n\x1a\n" + os.urandom(600))), 2, ("shot.fits",)),
    ("stack a colour cube", stack_with(lambda t: raw_file(t, "rgb.fits", fits_bytes([fits.PrimaryHDU(np.zeros((3, *SHAPE), np.uint16), header())]))), 2, ("rgb.fits",)),
    ("stack an all-NaN frame", stack_with(lambda t: raw_file(t, "nan.fits", fits_bytes([fits.PrimaryHDU(NAN, header())]))), 2, ("nan.fits",)),
    ("stack an all-infinite frame", stack_with(lambda t: raw_file(t, "inf.fits", fits_bytes([fits.PrimaryHDU(NAN + np.inf, header())]))), 2, ("inf.fits",)),
    ("stack a table, no image", stack_with(lambda t: raw_file(t, "table.fits", fits_bytes([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.zeros(3))])]))), 2, ("table.fits",)),
    ("stack an empty primary alone", stack_with(lambda t: raw_file(t, "nothing.fits", fits_bytes([fits.PrimaryHDU(header=header())]))), 2, ("nothing.fits",)),
    ("stack a one-dimensional image", stack_with(lambda t: raw_file(t, "line.fits", fits_bytes([fits.PrimaryHDU(np.zeros(32, np.uint16), header())]))), 2, ("line.fits",)),
    ("stack a frame of another size", stack_with(lambda t: raw_file(t, "big.fits", fits_bytes([fits.PrimaryHDU(np.zeros((48, 64), np.uint16), header())]))), 2, ("big.fits",)),
    ("stack a header claiming 40 gigapixels", stack_with(lambda t: raw_file(t, "huge.fits", huge_claim())), 2, ("huge.fits",)),
    ("stack a damaged .fits.fz", stack_with(lambda t: raw_file(t, "cut.fits.fz", damaged_fz(t))), 2, ("cut.fits.fz",)),
    ("stack a truncated .fits.gz", stack_with(lambda t: raw_file(t, "cut.fits.gz", __import__("gzip").compress(good_bytes(t))[:300])), 2, ("cut.fits.gz",)),
    ("stack a folder as a frame", stack_with(lambda t: str((t / "in" / "sub").mkdir(parents=True) or t / "in" / "sub")), 2, ("sub",)),
    ("stack a file that is not there", stack_with(lambda t: str(t / "in" / "dark_9.fits")), 2, ("dark_9.fits",)),
    ("stack into an existing folder", lambda t: ["stack", *darks(t), "-o", str((t / "in" / "masters").mkdir(parents=True) or t / "in" / "masters")], 2, ("masters",)),
    ("stack over one of its inputs", lambda t: ["stack", *(d := darks(t)), "-o", d[0]], 2, ("dark_0.fits",)),
    ("stack into a path under a file", lambda t: ["stack", *(d := darks(t)), "-o", d[0] + "/master.fits"], 2, ("dark_0.fits",)),
    ("stack an image in an extension", stack_with(lambda t: raw_file(t, "ext.fits", fits_bytes([fits.PrimaryHDU(header=header()), fits.ImageHDU(np.full(SHAPE, 1000, np.uint16))]))), 0, ()),
    ("stack frames with BLANK pixels", stack_with(lambda t: raw_file(t, "blank.fits", fits_bytes([fits.PrimaryHDU(np.where(np.arange(768).reshape(SHAPE) % 40 == 0, 0, 1000).astype(np.uint16), header() + fits.Header([("BLANK", -32768)]))]))), 0, ()),
    ("stack frames with a few NaN", lambda t: ["stack", *[raw_file(t, f"nan_{i}.fits", fits_bytes([fits.PrimaryHDU(np.where(np.arange(768).reshape(SHAPE) % (40 + i) == 0, np.nan, 1000.0 + i).astype(np.float32), header())])) for i in range(3)], "-o", str(t / "out" / "m.fits")], 0, ()),
    ("stack a float frame among raw ones", stack_with(lambda t: raw_file(t, "double.fits", fits_bytes([fits.PrimaryHDU(np.full(SHAPE, 1000.0), header())]))), 2, ("double.fits", "bit depth")),
]  # fmt: skip


def calibrate_with(light: Callable[[Path], str] | None = None, **masters: Callable[[Path], str]) -> Callable[[Path], list[str]]:
    def argv(tmp: Path) -> list[str]:
        lights = [light(tmp)] if light else [str(frame(tmp / "in" / "lights" / "m31_001.fits", 3000, kind="Light Frame"))]
        args = ["calibrate", *lights, "-o", str(tmp / "out")]
        for name, make in masters.items():
            args += [f"--{name}", make(tmp)]
        return args

    return argv


def master(tmp: Path, name: str, level: float, data: Any = None) -> str:
    return str(frame(tmp / "in" / "masters" / name, level, kind="Master Dark", data=data))


CALIBRATE_MISTAKES: list[Case] = [
    ("calibrate a zero-byte light", calibrate_with(lambda t: raw_file(t, "m31_001.fits", b""), dark=lambda t: master(t, "dark.fits", 1000)), 2, ("m31_001.fits",)),
    ("calibrate an all-NaN light", calibrate_with(lambda t: raw_file(t, "m31_nan.fits", fits_bytes([fits.PrimaryHDU(NAN, header("Light Frame"))])), dark=lambda t: master(t, "dark.fits", 1000)), 2, ("m31_nan.fits",)),
    ("calibrate with a dark that is not FITS", calibrate_with(dark=lambda t: raw_file(t, "dark.fits", b"SIMPLE  =   nonsense")), 2, ("dark.fits",)),
    ("calibrate with a flat of zeros", calibrate_with(dark=lambda t: master(t, "dark.fits", 1000), flat=lambda t: master(t, "flat.fits", 0, np.zeros(SHAPE, np.float32))), 2, ("flat",)),
    ("calibrate with a dark of another size", calibrate_with(dark=lambda t: master(t, "dark.fits", 0, np.full((48, 64), 1000, np.uint16))), 2, ("dark",)),
    ("calibrate with a cube as flat", calibrate_with(dark=lambda t: master(t, "dark.fits", 1000), flat=lambda t: master(t, "flat.fits", 0, np.ones((3, *SHAPE), np.float32))), 2, ("flat.fits",)),
    ("calibrate with a folder as dark", calibrate_with(dark=lambda t: str((t / "in" / "darkdir").mkdir(parents=True) or t / "in" / "darkdir")), 2, ("darkdir",)),
    ("calibrate with a dark that is not there", calibrate_with(dark=lambda t: str(t / "in" / "dark_missing.fits")), 2, ("dark_missing.fits",)),
    ("calibrate into a file", lambda t: [*calibrate_with(dark=lambda t: master(t, "dark.fits", 1000))(t)[:-4], "-o", raw_file(t, "out.txt", b"x"), "--dark", str(t / "in" / "masters" / "dark.fits")], 2, ("out.txt",)),
    ("calibrate with an empty suffix into the lights' folder", lambda t: [*calibrate_with(dark=lambda t: master(t, "dark.fits", 1000))(t)[:2], "-o", str(t / "in" / "lights"), "--suffix", "", "--dark", str(t / "in" / "masters" / "dark.fits")], 2, ("m31_001.fits",)),
]  # fmt: skip


def data_folder(tmp: Path) -> Path:
    folder = tmp / "in" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def library_file(tmp: Path, content: bytes) -> str:
    folder = data_folder(tmp)
    (folder / "library.sqlite").write_bytes(content)
    return str(folder)


def foreign_sqlite(tmp: Path) -> str:
    folder = data_folder(tmp)
    conn = sqlite3.connect(folder / "library.sqlite")
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO photos (name) VALUES ('holiday.jpg')")
    conn.commit()
    conn.close()
    return str(folder)


def newer_library(tmp: Path) -> str:
    from agent.library.migrations import newest_known
    from agent.library.store import Library

    folder = data_folder(tmp)
    with Library(folder):
        pass
    conn = sqlite3.connect(folder / "library.sqlite")
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (newest_known() + 1,))
    conn.commit()
    conn.close()
    for extra in ("library.sqlite-wal", "library.sqlite-shm"):
        (folder / extra).unlink(missing_ok=True)
    return str(folder)


def truncated_library(tmp: Path) -> str:
    from agent.library.store import Library

    scratch = tmp / "scratch"
    with Library(scratch):
        pass
    conn = sqlite3.connect(scratch / "library.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return library_file(tmp, (scratch / "library.sqlite").read_bytes()[:3000])


CORRUPT = b"SQLite format 3\x00" + b"\x07" * 5000
FOLDER_AND_DATABASE_MISTAKES: list[Case] = [
    ("library status with --data a file", lambda t: ["library", "status", "--data", raw_file(t, "data", b"notes")], 2, ("data",)),
    ("report with --data a file", lambda t: ["report", "--data", raw_file(t, "data", b"notes")], 2, ("data",)),
    ("ingest with --data under a file", lambda t: ["library", "ingest", *darks(t, 1), "--data", raw_file(t, "file", b"x") + "/data", "--no-build"], 2, ("file",)),
    ("ingest a folder that is not there", lambda t: ["library", "ingest", str(t / "in" / "nights" / "2026-13-01"), "--data", str(t / "data"), "--no-build"], 2, ("2026-13-01",)),
    ("ingest a folder of junk", lambda t: ["library", "ingest", raw_file(t, "junk/readme.txt", b"hello") and str(t / "in" / "junk"), "--data", str(t / "data"), "--no-build"], 0, ()),
    ("ingest a zero-byte frame", lambda t: ["library", "ingest", raw_file(t, "frames/dark_1.fits", b""), "--data", str(t / "data"), "--no-build"], 0, ()),
    ("ingest a damaged .fits.fz", lambda t: ["library", "ingest", raw_file(t, "frames/dark_1.fits.fz", damaged_fz(t)), "--data", str(t / "data"), "--no-build"], 0, ()),
    ("status of a corrupt library", lambda t: ["library", "status", "--data", library_file(t, CORRUPT)], 2, ("library",)),
    ("ingest into a corrupt library", lambda t: ["library", "ingest", *darks(t, 1), "--data", library_file(t, CORRUPT), "--no-build"], 2, ("library",)),
    ("needs of random bytes", lambda t: ["library", "needs", "--data", library_file(t, os.urandom(8192))], 2, ("library",)),
    ("status of a text file as library", lambda t: ["library", "status", "--data", library_file(t, b"frames: 12\n" * 100)], 2, ("library",)),
    ("status of another program's SQLite", lambda t: ["library", "status", "--data", foreign_sqlite(t)], 2, ("library",)),
    ("ingest into another program's SQLite", lambda t: ["library", "ingest", *darks(t, 1), "--data", foreign_sqlite(t), "--no-build"], 2, ("library",)),
    ("status of a newer library", lambda t: ["library", "status", "--data", newer_library(t)], 2, ("newer",)),
    ("needs of a newer library", lambda t: ["library", "needs", "--data", newer_library(t)], 2, ("newer",)),
    ("status of a truncated library", lambda t: ["library", "status", "--data", truncated_library(t)], 2, ("library",)),
    ("library file that is a folder", lambda t: ["library", "status", "--data", str((data_folder(t) / "library.sqlite").mkdir() or data_folder(t))], 2, ("library",)),
    ("report of a corrupt library", lambda t: ["report", "--data", library_file(t, CORRUPT)], 2, ("library",)),
    ("report of another program's SQLite", lambda t: ["report", "--data", foreign_sqlite(t)], 2, ("library",)),
    ("report of a newer library", lambda t: ["report", "--data", newer_library(t)], 2, ("newer",)),
    ("report of a night in a newer library", lambda t: ["report", "--night", "2026-03-14", "--data", newer_library(t)], 2, ("newer",)),
]  # fmt: skip


def sequence(tmp: Path) -> str:
    path = tmp / "in" / "night.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(mutated("version", 1))
    return str(path)


def cli_case(*args: str, data: bool = False) -> Callable[[Path], list[str]]:
    return lambda t: [*args, *(["--data", str(t / "data")] if data else [])]


CLI_MISTAKES: list[Case] = [
    ("report of month 13", cli_case("report", "--night", "2026-13-45", data=True), 2, ("2026-13-45",)),
    ("report of yesterday in words", cli_case("report", "--night", "yesterday", data=True), 2, ("yesterday",)),
    ("report of 30 February", cli_case("report", "--night", "2026-02-30", data=True), 2, ("2026-02-30",)),
    ("plan for 30 February", lambda t: ["plan", sequence(t), "--date", "2026-02-30"], 2, ("2026-02-30",)),
    ("plan for tomorrow in words", lambda t: ["plan", sequence(t), "--date", "tomorrow"], 2, ("tomorrow",)),
    ("run for a day that does not exist", lambda t: ["run", sequence(t), "--date", "2026-04-31", "--data", str(t / "data")], 2, ("2026-04-31",)),
    ("needs of the last -5 days", cli_case("library", "needs", "--days", "-5", data=True), 2, ("--days",)),
    ("needs of abc days", cli_case("library", "needs", "--days", "abc", data=True), 2, ("--days",)),
    ("masters expiring within -1 days", cli_case("library", "needs", "--expiring", "-1", data=True), 2, ("--expiring",)),
    ("master of -1 frames", cli_case("library", "needs", "--min-frames", "dark=-1", data=True), 2, ("--min-frames", "1 or more")),
    ("master of abc frames", cli_case("library", "needs", "--min-frames", "dark=abc", data=True), 2, ("--min-frames",)),
    ("frames of an unknown type", cli_case("library", "needs", "--min-frames", "lights=3", data=True), 2, ("--min-frames",)),
    ("frame count without a type", cli_case("library", "needs", "--min-frames", "20", data=True), 2, ("--min-frames",)),
    ("master age of zero days", cli_case("library", "needs", "--max-age", "flat=0", data=True), 2, ("--max-age",)),
    ("negative master age", cli_case("library", "needs", "--max-age", "flat=-3", data=True), 2, ("--max-age",)),
    ("negative temperature tolerance", cli_case("library", "needs", "--temperature-tolerance", "-1", data=True), 2, ("temperature",)),
    ("looser match on a field that is none", cli_case("library", "needs", "--allow-looser", "filter", data=True), 2, ("--allow-looser",)),
    ("negative looser temperature", cli_case("library", "needs", "--allow-looser", "temperature", "--temperature-within", "-2", data=True), 2, ("temperature",)),
    ("frames in an unknown state", cli_case("library", "frames", "--state", "lost", data=True), 2, ("--state",)),
    ("negative listing limit", cli_case("library", "frames", "--limit", "-1", data=True), 2, ("--limit",)),
    ("match a frame by name", cli_case("library", "match", "m31_001.fits", data=True), 2, ("FRAME_ID",)),
    ("match a frame that does not exist", cli_case("library", "match", "999", data=True), 2, ("999",)),
    ("INDI address without host", cli_case("devices", "--indi", ":7624"), 2, (":7624",)),
    ("INDI address with a word as port", cli_case("devices", "--indi", "foo:bar"), 2, ("foo:bar",)),
    ("INDI port zero", cli_case("devices", "--indi", "localhost:0"), 2, ("localhost:0",)),
    ("INDI port too large", cli_case("devices", "--indi", "localhost:99999"), 2, ("localhost:99999",)),
    ("INDI address as a URL", cli_case("devices", "--indi", "http://localhost:7624"), 2, ("http://localhost:7624",)),
    ("capture -1 frames", lambda t: ["capture", "--indi", "localhost:1", "--type", "dark", "--exposure", "1", "--count", "-1", "--out", str(t / "out")], 2, ("--count",)),
    ("capture a negative exposure", lambda t: ["capture", "--indi", "localhost:1", "--type", "dark", "--exposure", "-1", "--out", str(t / "out")], 2, ("--exposure",)),
    ("capture a frame type misspelt", lambda t: ["capture", "--type", "lite", "--exposure", "1", "--out", str(t / "out")], 2, ("--type",)),
    ("stack with no memory", lambda t: ["stack", *darks(t), "-o", str(t / "out.fits"), "--mem-limit", "0"], 2, ("--mem-limit",)),
    ("stack with negative memory", lambda t: ["stack", *darks(t), "-o", str(t / "out.fits"), "--mem-limit", "-5"], 2, ("--mem-limit",)),
    ("stack with zero threads", lambda t: ["stack", *darks(t), "-o", str(t / "out.fits"), "--threads", "0"], 2, ("--threads",)),
    ("stack with an unknown rejection", lambda t: ["stack", *darks(t), "-o", str(t / "out.fits"), "--rejection", "kappa"], 2, ("--rejection",)),
    ("stack with a negative sigma", lambda t: ["stack", *darks(t), "-o", str(t / "out.fits"), "--rejection", "sigma", "--low", "-1"], 2, ("--low",)),
    ("stack without an output", lambda t: ["stack", *darks(t)], 2, ("--output",)),
    ("calibrate an unknown sensor", calibrate_with(sensor=lambda t: "cmoss"), 2, ("--sensor",)),
    ("a command that does not exist", cli_case("stak"), 2, ("stak",)),
    ("the right command misspelt as helper", cli_case("library_ingest"), 2, ("library_ingest",)),
]  # fmt: skip

ALL_CASES = FITS_MISTAKES + CALIBRATE_MISTAKES + FOLDER_AND_DATABASE_MISTAKES + CLI_MISTAKES


@pytest.mark.parametrize(("what", "argv", "code", "words"), ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_bad_input(tmp_path: Path, capsys, what: str, argv, code: int, words: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    args = argv(tmp_path)
    before = digests(tmp_path / "in")
    check(run_inprocess(args, capsys), code, words)
    assert unchanged(before, digests(tmp_path / "in")), "an input was changed"


# one case of each family as a user runs it: a separate process, nothing shared
AS_A_USER = ["version 2", "stack a truncated file", "calibrate with a flat of zeros",
             "ingest into a corrupt library", "status of a newer library", "needs of the last -5 days",
             "INDI address as a URL"]  # fmt: skip


@pytest.mark.parametrize("what", AS_A_USER)
def test_bad_input_in_a_process_of_its_own(tmp_path: Path, what: str) -> None:
    found = [c for c in ALL_CASES if c[0] == what]
    if found:
        _, argv, code, words = found[0]
        args, problem = argv(tmp_path), False
    else:
        ((_, key, value, words),) = [c for c in KEY_MISTAKES if c[0] == what]
        args, code, problem = ["validate", raw_file(tmp_path, "night.yaml", mutated(key, value).encode())], 2, True
    before = digests(tmp_path / "in")
    check(run_subprocess(args, tmp_path), code, words, sequence_problem=problem)
    assert unchanged(before, digests(tmp_path / "in"))


@pytest.mark.skipif(ROOT_USER, reason="root reads and writes any folder")
@pytest.mark.parametrize("mode", [0o000, 0o500], ids=["unreadable", "read-only"])
def test_data_folder_without_permission(tmp_path: Path, capsys, mode: int) -> None:  # type: ignore[no-untyped-def]
    folder = data_folder(tmp_path)
    folder.chmod(mode)
    try:
        result = run_inprocess(["library", "ingest", *darks(tmp_path, 1), "--data", str(folder), "--no-build"], capsys)
    finally:
        folder.chmod(0o700)
    check(result, 2, ("permission",))


@pytest.mark.skipif(ROOT_USER, reason="root writes into any folder")
def test_stack_into_a_read_only_folder(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "masters"
    out.mkdir()
    out.chmod(0o500)
    try:
        result = run_inprocess(["stack", *darks(tmp_path), "-o", str(out / "master.fits")], capsys)
    finally:
        out.chmod(0o700)
    check(result, 2, ("permission",))


def test_the_table_is_large_enough() -> None:
    assert len(KEY_MISTAKES) + len(FILE_MISTAKES) + len(ALL_CASES) + 2 * 3 >= 150
