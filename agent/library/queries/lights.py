"""Lights with their night, target, filter and status chip; one light's masters and warnings."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable
from math import nan as NAN
from pathlib import Path
from typing import Any

from agent.library.queries.masters import master_row
from agent.library.store import Library, master_from_row

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
    night, target = _folder_place(path, frames_dir)
    return (night if night is not None else _evening(captured_at)), target


def _folder_place(path: str, frames_dir: str) -> tuple[str | None, str]:
    """(night, target) as the file's folder says; night None when only the capture time can say."""
    p = Path(path)
    if path.startswith(frames_dir + os.sep):
        parts = p.relative_to(frames_dir).parts
        if len(parts) >= 3:
            return parts[0], parts[1]
        if len(parts) == 2:
            return parts[0], "-"
    return None, p.parent.name or "-"


def _evening(captured_at: float | None) -> str:
    if not captured_at:
        return "-"
    return dt.datetime.fromtimestamp(float(captured_at) - 43200, dt.UTC).date().isoformat()


class Places:
    """`night_and_target` for many files at once: the folder is looked at once per folder, and
    every night and target name is one shared string (thousands of lights share them)."""

    def __init__(self, frames_dir: str) -> None:
        self.frames_dir = frames_dir
        self.folders: dict[str, tuple[str | None, str]] = {}
        self.names: dict[str, str] = {}

    def __call__(self, path: str, captured_at: float | None) -> tuple[str, str]:
        folder = path.rpartition(os.sep)[0]
        place = self.folders.get(folder)
        if place is None:
            night, target = _folder_place(path, self.frames_dir)
            place = self.folders[folder] = (None if night is None else self.shared(night), self.shared(target))
        night, target = place
        return (self.shared(_evening(captured_at)) if night is None else night), target

    def shared(self, text: str) -> str:
        return self.names.setdefault(text, text)


def file_name(path: str) -> str:
    """`Path(path).name`, without building a Path for the usual case."""
    name = path.rpartition(os.sep)[2]
    return name if name not in ("", ".", "..") else Path(path).name


def _real(value: float | None) -> float:
    return NAN if value is None else float(value)


def _optional(value: float) -> float | None:
    return None if value != value else value


class LightsIndex:
    """Every light with its night, target, filter and status, newest first; built once per library
    change. Kept in columns (a few tens of bytes a light, so 50,000 lights are a few megabytes, not
    fifty); a light becomes a dict only when it is shown. Selections are lists of positions."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.codes: dict[str, int] = {}
        self.ids = array("q")
        self.captured_at = array("d")
        self.exposure = array("d")
        self.temperature = array("d")
        self.night = array("I")
        self.target = array("I")
        self.filter = array("I")
        self.status = array("I")
        self.camera = array("I")
        self.calibrated = array("B")
        self.warnings = array("I")
        self.names = bytearray()  # every file name, UTF-8, one after the other
        self.name_ends = array("I")

    def __len__(self) -> int:
        return len(self.ids)

    def code(self, word: str) -> int:
        found = self.codes.get(word)
        if found is None:
            found = self.codes[word] = len(self.words)
            self.words.append(word)
        return found

    def add(self, light_id: int, name: str, night: str, target: str, filt: str, exposure: float | None,
            temperature: float | None, captured_at: float | None, camera: str, status: str, calibrated: bool,
            warnings: int) -> None:  # fmt: skip
        self.ids.append(light_id)
        self.captured_at.append(_real(captured_at))
        self.exposure.append(_real(exposure))
        self.temperature.append(_real(temperature))
        self.night.append(self.code(night))
        self.target.append(self.code(target))
        self.filter.append(self.code(filt))
        self.status.append(self.code(status))
        self.camera.append(self.code(camera))
        self.calibrated.append(calibrated)
        self.warnings.append(warnings)
        self.names += name.encode()
        self.name_ends.append(len(self.names))

    def name(self, i: int) -> str:
        return self.names[self.name_ends[i - 1] if i else 0 : self.name_ends[i]].decode()

    def row(self, i: int) -> dict[str, Any]:
        status = self.words[self.status[i]]
        return {
            "id": self.ids[i],
            "name": self.name(i),
            "night": self.words[self.night[i]],
            "target": self.words[self.target[i]],
            "filter": self.words[self.filter[i]],
            "exposure": _optional(self.exposure[i]),
            "temperature": _optional(self.temperature[i]),
            "captured_at": _optional(self.captured_at[i]),
            "camera": self.words[self.camera[i]],
            "status": status,
            "chip": CHIPS.get(status, (status, "grey")),
            "calibrated": bool(self.calibrated[i]),
            "warnings": self.warnings[i],
        }

    def rows(self, positions: Iterable[int]) -> list[dict[str, Any]]:
        return [self.row(i) for i in positions]

    def _distinct(self, column: array[int]) -> set[str]:
        return {self.words[c] for c in set(column)}

    def nights(self) -> list[str]:
        return sorted(self._distinct(self.night), reverse=True)

    def targets(self) -> list[str]:
        return sorted(self._distinct(self.target))

    def filters(self) -> list[str]:
        return sorted(self._distinct(self.filter))

    def select(
        self, night: str | None = None, target: str | None = None, filt: str | None = None, status: str | None = None
    ) -> list[int]:
        """Positions of the lights that match every name given, newest first."""
        tests = []
        for column, word in ((self.night, night), (self.target, target), (self.filter, filt), (self.status, status)):
            if word:
                code = self.codes.get(word)
                if code is None:
                    return []
                tests.append((column, code))
        if not tests:
            return list(range(len(self)))
        column, code = tests[0]
        found = [i for i, c in enumerate(column) if c == code]
        for column, code in tests[1:]:
            found = [i for i in found if column[i] == code]
        return found

    def summary(self, positions: Iterable[int]) -> list[dict[str, Any]]:
        """Counts by (night, target, filter) and status, newest night first."""
        groups: dict[tuple[int, int, int], Counter[int]] = defaultdict(Counter)
        for i in positions:
            groups[(self.night[i], self.target[i], self.filter[i])][self.status[i]] += 1
        w = self.words
        out = [
            {"night": w[k[0]], "target": w[k[1]], "filter": w[k[2]], "counts": {w[s]: n for s, n in c.items()},
             "total": sum(c.values())}
            for k, c in groups.items()
        ]  # fmt: skip
        out.sort(key=lambda g: (g["night"], g["target"], g["filter"]), reverse=True)
        return out

    def statuses(self, positions: Iterable[int]) -> dict[str, int]:
        """How many of these lights have each status (in the order first met)."""
        return {self.words[s]: n for s, n in Counter(self.status[i] for i in positions).items()}


def lights_index(lib: Library) -> LightsIndex:
    places = Places(lib.stored(lib.frames_dir))
    index = LightsIndex()
    for light_id, path, filt, exposure, temperature, captured_at, state, camera, status, calibrated, warnings in (
        lib.conn.execute(
            "SELECT f.id, f.path, f.filter, f.exposure, f.temperature, f.captured_at, f.state, f.camera, l.status, "
            "COALESCE(l.output_path, '') != '', COALESCE(json_array_length(l.warnings), 0) "
            "FROM frames f LEFT JOIN lights l ON l.frame_id = f.id "
            "WHERE f.frame_type = 'light' AND f.state IN ('light', 'rejected') "
            "ORDER BY COALESCE(f.captured_at, 0.0) DESC, f.id DESC"
        )
    ):
        night, target = places(str(path), captured_at)
        index.add(int(light_id), file_name(str(path)), night, target, str(filt or "-"), exposure, temperature,
                  captured_at, camera, "rejected" if state == "rejected" else str(status or "pending"),
                  bool(calibrated), int(warnings))  # fmt: skip
    return index


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
    night, target = night_and_target(str(d["path"]), d["captured_at"], lib.stored(lib.frames_dir))
    status = "rejected" if d["state"] == "rejected" else str(d["light_status"] or "pending")
    used = json.loads(d["masters_used"] or "{}")
    warnings = [str(w) for w in json.loads(d["warnings"] or "[]")]
    now = time.time()
    masters = []
    for kind, mid in used.items():
        detail = lib.conn.execute("SELECT * FROM masters WHERE id = ?", (int(mid),)).fetchone()
        if detail is None:
            continue
        masters.append({"kind": kind, **master_row(master_from_row(detail, lib.folder), now)})
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
