"""Read-only questions the dashboard asks the library: tables of masters, groups, lights, nights.

`ReadOnlyLibrary` opens the database with SQLite's `mode=ro` so a reader can never write, migrate
or take the write lock: the agent never waits for the web. Everything here only reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.library.keys import KEY_COLUMNS, ConfigKey, FrameType, LibraryPolicy
from agent.library.store import DB_NAME, Group, Library, LibraryError, MasterRecord

DAY = 86400.0


class ReadOnlyLibrary(Library):
    """A `Library` over a read-only connection: every read method works, writes raise."""

    def __init__(self, root: Path) -> None:  # noqa: D107 - no super(): it would migrate (write)
        self.root = root
        self.db_path = root / DB_NAME
        uri = "file:" + urllib.parse.quote(str(self.db_path)) + "?mode=ro"
        self.conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA query_only=ON")
        # Many threads may each hold a connection: keep each page cache small (the OS caches the file).
        self.conn.execute("PRAGMA cache_size=-2048")
        row = self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        self.schema_version = int(row[0] or 0)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        raise LibraryError("the library is open read-only here; ask the agent to change it")
        yield self.conn  # pragma: no cover


def open_readonly(root: str | os.PathLike[str]) -> ReadOnlyLibrary | None:
    """The library of a data directory, or None while there is none yet."""
    path = Path(root)
    if not (path / DB_NAME).is_file():
        return None
    try:
        return ReadOnlyLibrary(path)
    except sqlite3.Error:
        return None


def library_stamp(root: str | os.PathLike[str]) -> tuple[int, ...]:
    """Changes whenever the agent commits (database or WAL file touched): a cache key."""
    out: list[int] = []
    for name in (DB_NAME, DB_NAME + "-wal"):
        try:
            st = (Path(root) / name).stat()
            out += [st.st_mtime_ns, st.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)


# masters --------------------------------------------------------------------------------------


def master_row(m: MasterRecord, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    k = m.key
    return {
        **m.as_dict(),
        "describe": k.describe(),
        "name": Path(m.path).name,
        "age_days": round((now - m.created_at) / DAY, 1),
        "expires_in_days": round((m.expires_at - now) / DAY, 1),
        "expired": m.expires_at <= now,
        "newest_source": m.newest_source,
        "forced": bool(m.stats.get("forced")),
        "current": m.superseded_by is None,
    }


def masters_table(lib: Library, *, include_superseded: bool = False) -> list[dict[str, Any]]:
    now = time.time()
    rows = [master_row(m, now) for m in lib.masters(current_only=not include_superseded)]
    rows.sort(key=lambda r: (str(r["frame_type"]), str(r["camera"]), -float(r["created_at"])))
    return rows


def master_detail(lib: Library, master_id: int) -> dict[str, Any] | None:
    row = lib.conn.execute("SELECT * FROM masters WHERE id = ?", (master_id,)).fetchone()
    if row is None:
        return None
    from agent.library.store import master_from_row

    m = master_from_row(row)
    out = master_row(m)
    out["stats"] = m.stats
    out["sources"] = [
        dict(r)
        for r in lib.conn.execute(
            "SELECT f.id, f.path, f.exposure, f.temperature, f.captured_at FROM master_sources s "
            "JOIN frames f ON f.id = s.frame_id WHERE s.master_id = ? ORDER BY f.captured_at, f.id",
            (master_id,),
        )
    ]
    for s in out["sources"]:
        s["name"] = Path(str(s["path"])).name
    out["lights_calibrated"] = int(
        lib.conn.execute(
            "SELECT COUNT(*) FROM lights l WHERE status IN ('calibrated', 'stale') "
            "AND EXISTS (SELECT 1 FROM json_each(l.masters_used) WHERE value = ?)",
            (master_id,),
        ).fetchone()[0]
    )
    return out


# groups (individual frames) -----------------------------------------------------------------


def group_ident(group: Group) -> str:
    """A group's identity in URLs and control requests: its key and set-point as JSON."""
    return json.dumps(group.key.as_dict(), sort_keys=True, separators=(",", ":"))


def key_from_ident(ident: str) -> ConfigKey | None:
    try:
        raw = json.loads(ident)
        return ConfigKey.from_row(raw, temperature=raw.get("temperature"))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def frame_groups(lib: Library, policy: LibraryPolicy) -> list[dict[str, Any]]:
    """Accumulating frames by configuration, with progress toward the next master."""
    out = []
    for g in lib.groups(policy):
        target = policy.min_for(g.key.frame_type)
        out.append(
            {
                "ident": group_ident(g),
                "frame_type": g.key.frame_type.value,
                "describe": g.key.describe(),
                "key": g.key.as_dict(),
                "count": g.count,
                "target": target,
                "percent": min(100, round(100 * g.count / target)),
                "first_captured": g.first_captured,
                "last_captured": g.last_captured,
            }
        )
    out.sort(key=lambda r: (str(r["frame_type"]), -int(str(r["count"]))))
    return out


def group_frames(lib: Library, policy: LibraryPolicy, ident: str, limit: int = 500) -> list[dict[str, Any]] | None:
    """The frames of one accumulating group, or None when no such group exists now."""
    key = key_from_ident(ident)
    if key is None:
        return None
    for g in lib.groups(policy, key.frame_type):
        if g.key == key:
            ids = lib.group_frame_ids(g)[:limit]
            marks = ",".join("?" * len(ids))
            rows = lib.conn.execute(
                f"SELECT id, path, exposure, temperature, captured_at FROM frames WHERE id IN ({marks}) "
                "ORDER BY captured_at, id",
                ids,
            ).fetchall()
            return [{**dict(r), "name": Path(str(r["path"])).name} for r in rows]
    return None


# needs ----------------------------------------------------------------------------------------


def needs_table(lib: Library, policy: LibraryPolicy, light_days: float = 30.0) -> list[dict[str, Any]]:
    """`needs()` as plain rows; uncovered configurations list the lights that need them."""
    from agent.library.needs import needs

    items = needs(lib, policy, light_days=light_days)
    recent = RecentLights(lib, time.time() - light_days * DAY)
    out = []
    for n in items:
        row = n.as_dict()
        row["percent"] = min(100, round(100 * n.have / n.target)) if n.target else 100
        row["lights"] = recent.needing(n.key, policy) if n.kind in ("missing", "expired") else []
        out.append(row)
    return out


_LIGHT_FIELDS = ("camera", "sensor_kind", "width", "height", "binning", "gain", "offset", "readout_mode", "bit_depth")


class RecentLights:
    """Lights of the last days, read once and bucketed by the key fields every master shares,
    so each need finds its lights with a dictionary look-up."""

    def __init__(self, lib: Library, since: float) -> None:
        frames_dir = str(lib.frames_dir.resolve())
        self.buckets: dict[tuple[object, ...], list[tuple[str, float | None, float | None, tuple[str, str]]]] = {}
        for r in lib.conn.execute(
            f"SELECT path, filter, exposure, temperature, captured_at, {', '.join(_LIGHT_FIELDS)} FROM frames "
            "WHERE frame_type = 'light' AND captured_at >= ?",
            (since,),
        ):
            base = tuple(r[c] for c in _LIGHT_FIELDS)
            where = night_and_target(str(r["path"]), r["captured_at"], frames_dir)
            self.buckets.setdefault(base, []).append((str(r["filter"] or "-"), r["exposure"], r["temperature"], where))

    def needing(self, wanted: ConfigKey, policy: LibraryPolicy) -> list[dict[str, Any]]:
        values = dict(zip(KEY_COLUMNS, wanted.exact(), strict=True))
        exact_exposure = wanted.exposure_key is not None and not (
            wanted.frame_type is FrameType.DARK and wanted.sensor_kind.value == "ccd"
        )
        counts: Counter[tuple[str, str, str]] = Counter()
        for filt, exposure, temperature, (night, target) in self.buckets.get(tuple(values[c] for c in _LIGHT_FIELDS), []):
            if wanted.frame_type is FrameType.FLAT and filt != (wanted.filter or "-"):
                continue
            if wanted.temperature is not None and (
                temperature is None or abs(temperature - wanted.temperature) > policy.temperature_tolerance + 1e-9
            ):
                continue
            if exact_exposure and (exposure is None or abs(exposure - float(wanted.exposure_key or 0)) >= 0.5):
                continue
            counts[(night, target, filt)] += 1
        return [
            {"night": k[0], "target": k[1], "filter": k[2], "count": n}
            for k, n in sorted(counts.items(), reverse=True)[:20]
        ]


# lights ---------------------------------------------------------------------------------------

CHIPS = {
    "calibrated": ("Calibrated", "green"),
    "failed": ("Cal failed", "red"),
    "no_masters": ("No masters", "orange"),
    "rejected": ("Rejected", "grey"),
    "stale": ("Stale masters", "yellow"),
    "pending": ("Pending", "blue"),
}


def night_and_target(path: str, captured_at: float | None, frames_dir: str) -> tuple[str, str]:
    """Our captures live under `frames/<night>/<target>/`; other files are dated by capture time
    (the evening's date: UTC minus 12 h) and named by their folder."""
    p = Path(path)
    if path.startswith(frames_dir + os.sep):
        parts = p.relative_to(frames_dir).parts
        if len(parts) >= 3:
            return parts[0], parts[1]
        if len(parts) == 2:
            return parts[0], "-"
    night = "-"
    if captured_at:
        night = dt.datetime.fromtimestamp(float(captured_at) - 43200, dt.UTC).date().isoformat()
    return night, p.parent.name or "-"


@dataclass
class LightsIndex:
    """Every light with its night, target, filter and chip; built once per library change."""

    rows: list[dict[str, Any]]

    def nights(self) -> list[str]:
        return sorted({str(r["night"]) for r in self.rows}, reverse=True)

    def targets(self) -> list[str]:
        return sorted({str(r["target"]) for r in self.rows})

    def filters(self) -> list[str]:
        return sorted({str(r["filter"]) for r in self.rows})

    def select(
        self, night: str | None = None, target: str | None = None, filt: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            r
            for r in self.rows
            if (not night or r["night"] == night)
            and (not target or r["target"] == target)
            and (not filt or r["filter"] == filt)
            and (not status or r["status"] == status)
        ]

    def summary(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Counts by (night, target, filter) and status, newest night first."""
        groups: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        for r in rows:
            groups[(str(r["night"]), str(r["target"]), str(r["filter"]))][str(r["status"])] += 1
        out = [
            {"night": k[0], "target": k[1], "filter": k[2], "counts": dict(c), "total": sum(c.values())}
            for k, c in groups.items()
        ]
        out.sort(key=lambda g: (g["night"], g["target"], g["filter"]), reverse=True)
        return out


def lights_index(lib: Library) -> LightsIndex:
    frames_dir = str(lib.frames_dir.resolve())
    rows = []
    for r in lib.conn.execute(
        "SELECT f.id, f.path, f.filter, f.exposure, f.temperature, f.captured_at, f.state, f.camera, "
        "l.status, l.output_path, l.warnings FROM frames f LEFT JOIN lights l ON l.frame_id = f.id "
        "WHERE f.frame_type = 'light' AND f.state IN ('light', 'rejected')"
    ):
        night, target = night_and_target(str(r["path"]), r["captured_at"], frames_dir)
        status = "rejected" if r["state"] == "rejected" else str(r["status"] or "pending")
        rows.append(
            {
                "id": int(r["id"]),
                "name": Path(str(r["path"])).name,
                "night": night,
                "target": target,
                "filter": str(r["filter"] or "-"),
                "exposure": r["exposure"],
                "temperature": r["temperature"],
                "captured_at": r["captured_at"],
                "camera": r["camera"],
                "status": status,
                "chip": CHIPS.get(status, (status, "grey")),
                "calibrated": bool(r["output_path"]),
                "warnings": len(json.loads(r["warnings"] or "[]")),
            }
        )
    rows.sort(key=lambda r: (-(r["captured_at"] or 0.0), -r["id"]))
    return LightsIndex(rows)


def light_detail(lib: Library, frame_id: int) -> dict[str, Any] | None:
    row = lib.conn.execute(
        "SELECT f.*, l.status AS light_status, l.masters_used, l.warnings, l.output_path, l.reason AS light_reason, "
        "l.updated_at FROM frames f LEFT JOIN lights l ON l.frame_id = f.id "
        "WHERE f.id = ? AND f.frame_type = 'light'",
        (frame_id,),
    ).fetchone()
    if row is None:
        return None
    d = dict(row)
    night, target = night_and_target(str(d["path"]), d["captured_at"], str(lib.frames_dir.resolve()))
    status = "rejected" if d["state"] == "rejected" else str(d["light_status"] or "pending")
    used = json.loads(d["masters_used"] or "{}")
    warnings = [str(w) for w in json.loads(d["warnings"] or "[]")]
    now = time.time()
    masters = []
    for kind, mid in used.items():
        detail = lib.conn.execute("SELECT * FROM masters WHERE id = ?", (int(mid),)).fetchone()
        if detail is None:
            continue
        from agent.library.store import master_from_row

        masters.append({"kind": kind, **master_row(master_from_row(detail), now)})
    banners = [{"level": _banner_level(w), "text": w} for w in warnings]
    if status == "stale":
        banners.insert(0, {"level": "stale", "text": "a newer master replaced one used here; recalibrate this light"})
    for m in masters:
        if m["superseded_by"] is not None and status != "stale":
            banners.append({"level": "stale", "text": f"master #{m['id']} was superseded by #{m['superseded_by']}"})
    return {
        **{k: d[k] for k in ("id", "camera", "filter", "exposure", "temperature", "set_temp", "ccd_temp",
                             "gain", "offset", "binning", "readout_mode", "captured_at", "width", "height")},
        "name": Path(str(d["path"])).name,
        "night": night,
        "target": target,
        "status": status,
        "chip": CHIPS.get(status, (status, "grey")),
        "reason": d["light_reason"] or d["reason"],
        "calibrated_name": Path(str(d["output_path"])).name if d["output_path"] else None,
        "masters": masters,
        "warnings": warnings,
        "banners": banners,
        "updated_at": d["updated_at"],
    }


def _banner_level(text: str) -> str:
    low = text.lower()
    if "looser" in low:
        return "looser"
    if "temperature" in low or "°c" in low:
        return "temperature"
    if "expired" in low or "stale" in low or "superseded" in low:
        return "stale"
    return "warning"


# downloads ------------------------------------------------------------------------------------


def known_file(lib: Library, kind: str, ident: int) -> Path | None:
    """The file the library records for (kind, id), only if it is still exactly that file: a
    regular file at its recorded real path (no symlink anywhere on the way). Nothing from a
    request ever becomes a path; only ids are looked up."""
    if kind == "raw":
        row = lib.conn.execute("SELECT path, size_bytes FROM frames WHERE id = ?", (ident,)).fetchone()
        recorded, size = (row[0], row[1]) if row else (None, None)
    elif kind == "calibrated":
        row = lib.conn.execute("SELECT output_path FROM lights WHERE frame_id = ?", (ident,)).fetchone()
        recorded, size = (row[0] if row else None), None
    elif kind == "master":
        row = lib.conn.execute("SELECT path FROM masters WHERE id = ?", (ident,)).fetchone()
        recorded, size = (row[0] if row else None), None
    else:
        return None
    if not recorded:
        return None
    path = Path(str(recorded))
    if not path.is_absolute():
        path = lib.root / path
    return checked_file(path, size)


def checked_file(path: Path, size: int | None = None) -> Path | None:
    """`path` if it is a regular file reached without symlinks (and of `size` when given)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    import stat

    if not stat.S_ISREG(st.st_mode) or os.path.realpath(path) != os.path.normpath(path):
        return None
    if size is not None and st.st_size != size:
        return None
    return path


def light_files(lib: Library, night: str | None = None, target: str | None = None) -> list[tuple[str, Path]]:
    """(name in the zip, file) for every raw and calibrated light of a night or a target."""
    index = lights_index(lib)
    out = []
    for r in index.select(night=night, target=target):
        folder = f"{r['night']}/{r['target']}/{r['filter']}"
        raw = known_file(lib, "raw", int(r["id"]))
        if raw is not None:
            out.append((f"{folder}/raw/{raw.name}", raw))
        cal = known_file(lib, "calibrated", int(r["id"]))
        if cal is not None:
            out.append((f"{folder}/calibrated/{cal.name}", cal))
    return out


# nights, report, campaigns --------------------------------------------------------------------


def night_names(root: Path, index: LightsIndex | None = None) -> list[str]:
    names = {p.stem for p in (root / "nights").glob("*.json")} if (root / "nights").is_dir() else set()
    if index is not None:
        names |= {n for n in index.nights() if n != "-"}
    return sorted(names, reverse=True)


def read_progress(root: Path, night: str) -> dict[str, Any] | None:
    """The night's progress file as the night writes it (`<data>/nights/<night>.json`)."""
    if not _is_date(night):
        return None
    try:
        raw = json.loads((root / "nights" / f"{night}.json").read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def night_report(lib: Library, root: Path, night: str, policy: LibraryPolicy) -> dict[str, Any]:
    """The morning report: the shape `obsagent report --json` prints, plus per-target lights."""
    night_dir = str((root / "frames" / night).resolve())
    pattern = f"{night_dir}/%"
    captured = {
        str(r[0]): int(r[1])
        for r in lib.conn.execute(
            "SELECT frame_type, COUNT(*) FROM frames WHERE path LIKE ? GROUP BY frame_type", (pattern,)
        )
    }
    index = lights_index(lib)
    tonight = index.select(night=night)
    lights = dict(Counter(str(r["status"]) for r in tonight))
    built = {
        int(r[0])
        for r in lib.conn.execute(
            "SELECT DISTINCT s.master_id FROM master_sources s JOIN frames f ON f.id = s.frame_id WHERE f.path LIKE ?",
            (pattern,),
        )
    }
    masters = [m for m in masters_table(lib, include_superseded=True) if m["id"] in built]
    progress = read_progress(root, night) or {}
    remaining = [n for n in needs_table(lib, policy) if n["kind"] in ("missing", "expired", "waiting")]
    return {
        "night": night,
        "state": progress.get("state"),
        "resumed": progress.get("resumed", 0),
        "captured": captured,
        "lights": lights,
        "masters_built": masters,
        "needs": remaining,
        "warnings": progress.get("warnings", []),
        "events": progress.get("events", []),
        "targets": index.summary(tonight),
        "frames_dir": night_dir,
        "data_dir": str(root),
    }


def campaigns(lib: Library) -> list[dict[str, Any]]:
    """Per target: lights and integration time by filter, over all nights."""
    index = lights_index(lib)
    by_target: dict[str, dict[str, Any]] = {}
    for r in index.rows:
        t = by_target.setdefault(
            str(r["target"]), {"target": r["target"], "nights": set(), "filters": defaultdict(Counter)}
        )
        t["nights"].add(r["night"])
        f = t["filters"][str(r["filter"])]
        f["lights"] += 1
        f["seconds"] += int(float(r["exposure"] or 0))
        if r["status"] == "calibrated":
            f["calibrated"] += 1
    out = []
    for t in by_target.values():
        filters = [
            {"filter": name, "lights": c["lights"], "calibrated": c["calibrated"], "hours": round(c["seconds"] / 3600, 2)}
            for name, c in sorted(t["filters"].items())
        ]
        out.append(
            {
                "target": t["target"],
                "nights": sorted(t["nights"], reverse=True),
                "filters": filters,
                "lights": sum(f["lights"] for f in filters),
                "hours": round(sum(f["hours"] for f in filters), 2),
            }
        )
    out.sort(key=lambda t: -t["hours"])
    return out
