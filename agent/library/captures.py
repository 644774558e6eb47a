"""The names the night gives its own captures, and how many of them the library holds.

A night's frames live in `frames/<night>/<target, else frame type>/` and are named
`<type>[_<target>][_<filter>]_<exposure>s_<index>.fits` (the filter only for lights and
flats). Counting them from the library's rows, never from memory, lets a resumed night
capture exactly what is still missing.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from agent.library.locations import disk_path, like_under

FILTERED_TYPES = ("light", "flat")


def slug(text: str) -> str:
    """A target or filter name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "x"


def capture_folder(night_dir: Path, frame_type: str, target: str | None = None) -> Path:
    return night_dir / (slug(target) if target else str(frame_type))


def capture_prefix(frame_type: str, filter_name: str | None = None, target: str | None = None) -> str:
    """`<type>[_<target>][_<filter>]`: the part of the name shared by every exposure."""
    kind = str(frame_type)
    parts = [kind]
    if target:
        parts.append(slug(target))
    if filter_name and kind in FILTERED_TYPES:
        parts.append(slug(filter_name))
    return "_".join(parts)


def capture_path(
    night_dir: Path,
    frame_type: str,
    exposure: float,
    index: int,
    filter_name: str | None = None,
    target: str | None = None,
) -> Path:
    """Where the night stores its `index`-th frame of this kind (1-based)."""
    name = f"{capture_prefix(frame_type, filter_name, target)}_{exposure:g}s_{index:04d}.fits"
    return capture_folder(night_dir, frame_type, target) / name


def count_captured(
    conn: sqlite3.Connection,
    root: Path,
    night_dir: Path,
    frame_type: str,
    exposure: float | None,
    filter_name: str | None = None,
    target: str | None = None,
) -> int:
    """Frames of this kind recorded under `night_dir` (quarantined ones do not count).

    Matched on the path with SQL LIKE, as the night always counted: without an exposure every
    exposure (and, with no filter either, every filter) counts; with an exposure but no filter
    only frames named without a filter count. LIKE ignores ASCII case and reads `_` as any one
    character.
    """
    folder = capture_folder(night_dir, frame_type, target)
    prefix = capture_prefix(frame_type, filter_name, target)
    pattern = f"{prefix}_{exposure:g}s_" if exposure is not None else f"{prefix}_"
    row = conn.execute(
        "SELECT COUNT(*) FROM frames WHERE path LIKE ? AND state != 'quarantined'",
        (like_under(root, folder)[:-1] + f"{pattern}%",),
    ).fetchone()
    return int(row[0])


def known_paths(conn: sqlite3.Connection, root: Path, folder: Path) -> set[str]:
    """Paths (on disk now, resolved) of the rows recorded under `folder`, to find files a crash
    left without a row. `root` is the data folder, resolved."""
    rows = conn.execute("SELECT path FROM frames WHERE path LIKE ?", (like_under(root, folder),))
    return {str(disk_path(root, str(r[0]))) for r in rows}


def lights_to_calibrate(conn: sqlite3.Connection, root: Path, folder: Path) -> list[Path]:
    """Lights under `folder` not calibrated yet: pending, waiting for masters, or calibrated by a stale one."""
    rows = conn.execute(
        "SELECT f.path FROM lights l JOIN frames f ON f.id = l.frame_id "
        "WHERE l.status IN ('pending', 'no_masters', 'stale') AND f.path LIKE ? ORDER BY f.id",
        (like_under(root, folder),),
    )
    return [disk_path(root, str(r[0])) for r in rows]


def night_summary(conn: sqlite3.Connection, root: Path, folder: Path) -> tuple[dict[str, int], dict[str, int], set[int]]:
    """For the morning report: frames by type, lights by status, and the masters built from
    frames under `folder`."""
    under = (like_under(root, folder),)
    captured = {
        str(r[0]): int(r[1])
        for r in conn.execute("SELECT frame_type, COUNT(*) FROM frames WHERE path LIKE ? GROUP BY frame_type", under)
    }
    lights = {
        str(r[0]): int(r[1])
        for r in conn.execute(
            "SELECT l.status, COUNT(*) FROM lights l JOIN frames f ON f.id = l.frame_id "
            "WHERE f.path LIKE ? GROUP BY l.status",
            under,
        )
    }
    masters = {
        int(r[0])
        for r in conn.execute(
            "SELECT DISTINCT s.master_id FROM master_sources s JOIN frames f ON f.id = s.frame_id WHERE f.path LIKE ?",
            under,
        )
    }
    return captured, lights, masters


def night_gates(conn: sqlite3.Connection, root: Path, folder: Path) -> list[dict[str, str]]:
    """Every quality gate that fired on frames under `folder`: frames quarantined or rejected
    (and why), and lights whose calibration failed (and why)."""
    under = (like_under(root, folder),)
    gates = [
        {"gate": "frame " + str(r[1]), "file": Path(str(r[0])).name, "reason": str(r[2] or "")}
        for r in conn.execute(
            "SELECT path, state, reason FROM frames WHERE state IN ('quarantined', 'rejected') AND path LIKE ? "
            "ORDER BY id",
            under,
        )
    ]
    gates += [
        {"gate": "light failed", "file": Path(str(r[0])).name, "reason": str(r[1] or "")}
        for r in conn.execute(
            "SELECT f.path, l.reason FROM lights l JOIN frames f ON f.id = l.frame_id "
            "WHERE l.status = 'failed' AND f.path LIKE ? ORDER BY f.id",
            under,
        )
    ]
    return gates
