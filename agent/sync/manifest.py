"""The JSON manifest that travels beside each master, and the master's remote names.

Remote names are content-addressed (`masters/<sha256[:2]>/<sha256>.fits`), so uploading
the same master twice lands on the same name and a re-upload is harmless; its defect map, when it
has one, goes beside it as `<sha256>.defects.fits`, with its own checksum in the manifest. The manifest
says what the master is (configuration, sources, statistics) and whether a newer master
has superseded it; it is the only remote object that is ever rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from agent import __version__

MANIFEST_FORMAT = 1
REMOTE_PREFIX = "masters"
REQUIRED = ("checksum", "size", "created", "superseded")


def file_sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def remote_names(sha256: str) -> tuple[str, str]:
    """(FITS name, manifest name) relative to the target's root."""
    stem = f"{REMOTE_PREFIX}/{sha256[:2]}/{sha256}"
    return f"{stem}.fits", f"{stem}.json"


def remote_defects_name(sha256: str) -> str:
    """The master's defect map beside it remotely, named as `products.defects_path` names it locally."""
    return f"{REMOTE_PREFIX}/{sha256[:2]}/{sha256}.defects.fits"


def defects_entry(master_path: Path, sha256: str) -> dict[str, Any] | None:
    """What the manifest says of the master's defect map (`<master>.defects.fits` beside it, when
    it belongs to this master): its local name, checksum, size and remote name; None without one."""
    from agent.stacking.products import defects_file

    side = defects_file(master_path)
    if side is None:
        return None
    return {"local_name": side.name, "sha256": file_sha256(side), "size": side.stat().st_size,
            "remote": remote_defects_name(sha256)}  # fmt: skip


def complete(
    manifest: dict[str, Any], master_path: Path, sha256: str, size: int, defects: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The manifest with the fields every upload relies on filled in (`defects`: `defects_entry`)."""
    out = dict(manifest)
    fits_name, json_name = remote_names(sha256)
    out["format"] = MANIFEST_FORMAT
    out["checksum"] = {"sha256": sha256}
    out["size"] = size
    out.setdefault("created", time.time())
    out.setdefault("superseded", False)
    out.setdefault("superseded_by", None)
    out.setdefault("configuration", {})
    out.setdefault("sources", [])
    out.setdefault("statistics", {})
    out["file"] = {"local_name": master_path.name, "remote": fits_name, "manifest": json_name}
    out["defects"] = defects
    out.setdefault("software", f"obsagent {__version__}")
    return out


def encode(manifest: dict[str, Any]) -> bytes:
    """Stable bytes: the same manifest always uploads the same content."""
    return (json.dumps(manifest, sort_keys=True, indent=2, default=str) + "\n").encode()


def library_manifest(conn: sqlite3.Connection, master_id: int) -> dict[str, Any]:
    """Manifest of a master registered in the library: its configuration key, statistics and
    source frames (file name, checksum, capture time), read from the library's tables."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    row = cur.execute("SELECT * FROM masters WHERE id = ?", (master_id,)).fetchone()
    if row is None:
        raise LookupError(f"no master #{master_id} in the library")
    names = set(row.keys())
    config_cols = (
        "frame_type", "camera", "sensor_kind", "width", "height", "binning", "gain", "offset",
        "readout_mode", "bit_depth", "filter", "exposure_key", "temperature", "exposure",
    )
    configuration = {c: row[c] for c in config_cols if c in names}
    try:
        statistics: dict[str, Any] = json.loads(str(row["stats"])) if "stats" in names else {}
    except ValueError:
        statistics = {}
    for col in ("n_sources", "method", "sources_hash", "newest_source", "expires_at"):
        if col in names:
            statistics[col] = row[col]
    sources = [
        {
            "name": Path(str(s["path"])).name,
            "sha256": s["checksum"],
            "captured_at": s["captured_at"],
            "size": s["size_bytes"],
        }
        for s in cur.execute(
            "SELECT f.path, f.checksum, f.captured_at, f.size_bytes FROM master_sources ms "
            "JOIN frames f ON f.id = ms.frame_id WHERE ms.master_id = ? ORDER BY f.captured_at, f.id",
            (master_id,),
        )
    ]
    superseded_by = row["superseded_by"] if "superseded_by" in names else None
    return {
        "master_id": master_id,
        "configuration": configuration,
        "statistics": statistics,
        "sources": sources,
        "created": row["created_at"] if "created_at" in names else time.time(),
        "superseded": superseded_by is not None,
        "superseded_by_master_id": superseded_by,
    }
