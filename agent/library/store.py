"""The calibration library: one SQLite database (WAL) beside the frames and masters it describes.

`Library` is the one door other parts use: they ask it questions through its methods and never
write SQL against its tables. The work is done in one module per idea: `ingest` (recording
files), `grouping` (frames on their way into a master), `master_records`, `light_records`,
`sensor_kinds` and `captures` (the night's own files). Files are always written before the row that names them
is committed, so after a crash the database never points at a missing or half-written file;
files without rows are found by the sweep (`orphans`) and ingested.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from agent.library import captures, grouping, ingest, light_records, master_records, sensor_kinds
from agent.library.database import DB_NAME, LibraryError, connect, key_clause, transaction
from agent.library.grouping import Group, cluster_temperatures
from agent.library.ingest import FITS_SUFFIXES, IngestResult, file_checksum, iter_fits
from agent.library.keys import ConfigKey, FrameType, LibraryPolicy, SensorKind
from agent.library.locations import MissingFiles, check_files, disk_path, stored_path
from agent.library.master_records import MasterRecord, master_from_row
from agent.library.migrations import check_not_newer, migrate

if TYPE_CHECKING:
    import numpy as np
    from astropy.io import fits

__all__ = [
    "DB_NAME",
    "FITS_SUFFIXES",
    "Group",
    "IngestResult",
    "Library",
    "LibraryError",
    "MasterRecord",
    "cluster_temperatures",
    "file_checksum",
    "iter_fits",
    "key_clause",
    "master_from_row",
]

log = logging.getLogger(__name__)


class Library:
    """Frames, masters, lights and build jobs of one data directory."""

    def __init__(self, root: Path, *, check: bool = True) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.folder = root.resolve()
        self.db_path = root / DB_NAME
        check_not_newer(self.db_path)  # before connect: opening for writing may change the file
        self.conn = connect(self.db_path)
        self.schema_version = migrate(self.conn)
        if check:
            self.warn_missing()

    @classmethod
    def open(cls, data: str | os.PathLike[str] | None = None, *, check: bool = True) -> Library:
        from agent.paths import data_dir

        return cls(data_dir(data), check=check)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # where files are -------------------------------------------------------------------------

    def stored(self, path: str | os.PathLike[str]) -> str:
        """How a file is recorded: relative inside the data folder, absolute outside it."""
        return stored_path(self.folder, path)

    def on_disk(self, stored: str | os.PathLike[str]) -> Path:
        """Where a recorded file is now (relative records are inside the data folder)."""
        return disk_path(self.folder, stored)

    def missing_files(self, sample: int = 64) -> MissingFiles:
        """Current masters and a sample of frames the library records but the disk lacks."""
        return check_files(self.conn, self.folder, sample)

    def warn_missing(self) -> str | None:
        """Log (and return) one warning line when recorded files are missing on disk, so a
        folder copied without its frames or masters never reads as an empty library."""
        line = self.missing_files().warning(self.folder)
        if line is not None:
            log.warning("%s", line)
        return line

    @property
    def masters_dir(self) -> Path:
        return self.root / "masters"

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with transaction(self.conn) as c:
            yield c

    # cameras -------------------------------------------------------------------------------

    def camera_kind(self, name: str) -> SensorKind:
        return sensor_kinds.camera_kind(self.conn, name)

    def set_camera_kind(self, name: str, kind: SensorKind) -> int:
        """Record a camera's sensor kind; frames and masters already recorded follow it."""
        return sensor_kinds.set_camera_kind(self, name, kind)

    def cameras(self) -> list[dict[str, object]]:
        return sensor_kinds.list_cameras(self.conn)

    # ingest --------------------------------------------------------------------------------

    def ingest_file(self, path: str | os.PathLike[str], *, frame_type: FrameType | None = None) -> IngestResult:
        """Record one file. Idempotent: the same path with the same bytes is left alone; a
        file the library cannot key is quarantined with the reason, never raised."""
        return ingest.ingest_file(self, path, frame_type=frame_type)

    def add_frame(
        self, data: np.ndarray, header: fits.Header, name: str, *, frame_type: FrameType | None = None
    ) -> IngestResult:
        """Store a frame arriving from capture: file first (atomic), then its row."""
        from agent.fitsfile import write_fits_atomic

        day = time.strftime("%Y-%m-%d", time.gmtime())
        target = self.frames_dir / day / name
        write_fits_atomic(target, data, header)
        return self.ingest_file(target, frame_type=frame_type)

    def ingest_paths(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        frame_type: FrameType | None = None,
        progress: Callable[[int, int], object] | None = None,
    ) -> list[IngestResult]:
        """Record every FITS file named or found under the folders; `progress(done, total)`."""
        files = list(iter_fits(paths))
        results = []
        for f in files:
            results.append(self.ingest_file(f, frame_type=frame_type))
            if progress is not None:
                progress(len(results), len(files))
        return results

    def orphans(self) -> list[Path]:
        """Frames our capture wrote whose row was never committed (crash between the two)."""
        return ingest.find_orphans(self.conn, self.folder, self.frames_dir)

    # the night's captures ------------------------------------------------------------------

    def night_dir(self, night: str) -> Path:
        """The folder a night's captures are stored under (`frames/<night>`)."""
        return self.frames_dir / night

    def count_captured(
        self,
        night_dir: Path,
        frame_type: str,
        exposure: float | None,
        filter_name: str | None = None,
        target: str | None = None,
    ) -> int:
        """How many frames of this type, exposure, filter and target the night stored under
        `night_dir` (see `captures.count_captured`); quarantined files do not count."""
        return captures.count_captured(self.conn, self.folder, night_dir, frame_type, exposure, filter_name, target)

    def known_paths(self, folder: Path) -> set[str]:
        """Paths (on disk, resolved) the library has rows for under `folder`."""
        return captures.known_paths(self.conn, self.folder, folder)

    def lights_to_calibrate(self, folder: Path) -> list[Path]:
        """Lights under `folder` still to calibrate (pending, no masters yet, or a stale master)."""
        return captures.lights_to_calibrate(self.conn, self.folder, folder)

    def night_summary(self, folder: Path) -> tuple[dict[str, int], dict[str, int], set[int]]:
        """Frames by type, lights by status and the ids of masters built from frames under `folder`."""
        return captures.night_summary(self.conn, self.folder, folder)

    def night_gates(self, folder: Path) -> list[dict[str, str]]:
        """The quality gates that fired on frames under `folder`, each with its reason."""
        return captures.night_gates(self.conn, self.folder, folder)

    def frame_path(self, frame_id: int) -> Path | None:
        """Where the frame with this id is stored, or None if there is no such frame."""
        row = self.conn.execute("SELECT path FROM frames WHERE id = ?", (frame_id,)).fetchone()
        return None if row is None else self.on_disk(str(row[0]))

    def light_frame(self, path: str | os.PathLike[str]) -> sqlite3.Row | None:
        """The frame row of a light recorded at `path`, or None (its `path` as recorded)."""
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM frames WHERE path = ? AND frame_type = 'light'", (self.stored(path),)
        ).fetchone()
        return row

    def count_accumulating(self, frame_type: FrameType, camera: str) -> int:
        """Frames of this type from this camera still waiting to go into a master."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM frames WHERE frame_type = ? AND state = 'accumulating' AND camera = ?",
            (frame_type.value, camera),
        ).fetchone()
        return int(row[0])

    # groups --------------------------------------------------------------------------------

    def groups(self, policy: LibraryPolicy, frame_type: FrameType | None = None) -> list[Group]:
        """Accumulating calibration frames grouped by exact key, temperatures clustered within
        the policy's tolerance around the most used set-point."""
        return grouping.find_groups(self.conn, policy, frame_type)

    def group_frame_ids(self, group: Group) -> list[int]:
        return grouping.group_frame_ids(self.conn, group)

    # masters -------------------------------------------------------------------------------

    def masters(self, *, current_only: bool = False, frame_type: FrameType | None = None) -> list[MasterRecord]:
        return master_records.list_masters(
            self.conn, self.folder, current_only=current_only, frame_type=frame_type
        )

    def master(self, master_id: int) -> MasterRecord:
        return master_records.find_master(self.conn, self.folder, master_id)

    def candidate_masters(self, key: ConfigKey, relax: frozenset[str] = frozenset()) -> list[MasterRecord]:
        """Masters whose exact key agrees with `key` except in the relaxed fields."""
        return master_records.candidate_masters(self.conn, self.folder, key, relax)

    # lights --------------------------------------------------------------------------------

    def record_light_calibration(
        self,
        frame_id: int,
        *,
        status: str,
        masters_used: dict[str, int],
        warnings: Sequence[str] = (),
        output_path: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Remember how a light was calibrated so a newer master can invalidate the output."""
        light_records.record_light_calibration(
            self,
            frame_id,
            status=status,
            masters_used=masters_used,
            warnings=warnings,
            output_path=None if output_path is None else self.stored(output_path),
            reason=reason,
        )

    def lights(self, status: str | None = None, limit: int | None = None) -> list[dict[str, object]]:
        """Lights with their frame's configuration; `path` and `output_path` as on disk now."""
        return light_records.list_lights(self.conn, self.folder, status, limit)

    # frames and totals ---------------------------------------------------------------------

    def frames(
        self, *, state: str | None = None, frame_type: FrameType | None = None, limit: int | None = None
    ) -> list[dict[str, object]]:
        sql = "SELECT * FROM frames WHERE 1=1"
        args: list[object] = []
        if state:
            sql += " AND state = ?"
            args.append(state)
        if frame_type:
            sql += " AND frame_type = ?"
            args.append(frame_type.value)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for r in self.conn.execute(sql, args):
            d = dict(r)
            d["quality_flags"] = json.loads(str(d["quality_flags"]))
            d["path"] = str(self.on_disk(str(d["path"])))
            out.append(d)
        return out

    def reject_light(self, frame_id: int, reason: str) -> None:
        """A light judged unusable (clouds in it): never calibrated, never counted towards a campaign."""
        with self.transaction() as c:
            c.execute(
                "UPDATE frames SET state = 'rejected', reason = ? WHERE id = ? AND frame_type = 'light'",
                (reason, frame_id),
            )
        self.record_light_calibration(frame_id, status="failed", masters_used={}, reason=reason)

    def reject_frame(self, frame_id: int, reason: str) -> None:
        with self.transaction() as c:
            n = c.execute(
                "UPDATE frames SET state = 'rejected', reason = ? WHERE id = ? AND state = 'accumulating'",
                (reason, frame_id),
            ).rowcount
        if n == 0:
            raise LibraryError(f"frame #{frame_id} is not accumulating; only those can be rejected")

    def counts(self) -> dict[str, object]:
        by_state = {
            f"{r[0]}/{r[1]}": int(r[2])
            for r in self.conn.execute(
                "SELECT state, COALESCE(frame_type, '-'), COUNT(*) FROM frames GROUP BY state, frame_type"
            )
        }
        totals = self.conn.execute("SELECT COUNT(*), SUM(superseded_by IS NULL) FROM masters").fetchone()
        jobs = {r[0]: int(r[1]) for r in self.conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")}
        by_status = {
            r[0]: int(r[1]) for r in self.conn.execute("SELECT status, COUNT(*) FROM lights GROUP BY status")
        }
        return {
            "frames": by_state,
            "masters": int(totals[0] or 0),
            "current_masters": int(totals[1] or 0),
            "jobs": jobs,
            "lights": by_status,
            "schema_version": self.schema_version,
            "database": str(self.db_path),
        }
