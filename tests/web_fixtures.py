"""A data folder holding a finished night, for the dashboard tests, and a live server on it.

Frames are tiny (64x48) NINA-style files laid out as the night stores them
(`frames/<night>/<target or type>/...`), ingested through the library, built into masters by
the library's own build jobs, and lights calibrated by the night's calibration step. The night's
progress file and the live status file are written as the night writes them.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from library_fixtures import nina_header

from agent.fitsfile import write_fits_atomic
from agent.library.keys import FrameType, LibraryPolicy
from agent.library.store import Library
from agent.status import NightStatus, write_status

SHAPE = (48, 64)
MIN5 = LibraryPolicy(
    min_frames={FrameType.BIAS: 5, FrameType.DARK: 5, FrameType.DARKFLAT: 5, FrameType.FLAT: 5}
)
TOKEN = "test-token-123456"


@dataclass
class FinishedNight:
    root: Path
    night: str
    lights: dict[str, int]  # name -> frame id: calibrated, no_masters, failed, rejected, warned
    master_ids: list[int]
    group_count: int  # accumulating darks of the unfinished group


def _frame(path: Path, header: object, level: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    data = np.clip(rng.normal(level, 5.0, SHAPE), 0, 65535).astype(np.uint16)
    # a star, so previews are not flat
    data[20:23, 30:33] = 30000
    return write_fits_atomic(path, data, header)  # type: ignore[arg-type]


def build_finished_night(root: Path) -> FinishedNight:
    from agent.library.builder import drain
    from agent.night.lightcal import calibrate_light

    when = time.time() - 86400
    night = dt.datetime.fromtimestamp(when - 43200, dt.UTC).date().isoformat()
    base = root / "frames" / night
    seed = 0

    def series(folder: str, stem: str, n: int, kind: str, exposure: float, level: float, **kw: object) -> list[Path]:
        nonlocal seed
        out = []
        for i in range(n):
            seed += 1
            header = nina_header(kind, exposure, when=when + seed * 60, **kw)  # type: ignore[arg-type]
            header["OBJECT"] = folder
            out.append(_frame(base / folder / f"{stem}_{i:04d}.fits", header, level, seed))
        return out

    darks = series("dark", "dark_60s", 5, "dark", 60, 1010)
    extra_darks = series("dark", "dark_120s", 3, "dark", 120, 1020)
    darkflats = series("darkflat", "darkflat_2s", 5, "darkflat", 2.0, 1002)
    flats_l = series("flat", "flat_L", 5, "flat", 2.0, 20000, filt="L")
    lights_l = series("M_42", "M_42_L", 4, "light", 60, 1500, filt="L")
    lights_ha = series("NGC_7000", "NGC_7000_Ha", 2, "light", 60, 1400, filt="Ha", gain=200)
    with Library(root) as lib:
        for path in darks + extra_darks + darkflats + flats_l + lights_l + lights_ha:
            result = lib.ingest_file(path)
            assert result.status == "added", result
        drain(lib, MIN5)
        masters = [m.id for m in lib.masters()]
        assert len(masters) == 3, [m.key.describe() for m in lib.masters()]
        statuses = [calibrate_light(lib, p, MIN5) for p in lights_l + lights_ha]
        assert statuses == ["calibrated"] * 4 + ["no_masters"] * 2, statuses
        ids = {str(r["path"]): int(r["id"]) for r in lib.lights()}
        warned = ids[str(lights_l[1].resolve())]
        failed = ids[str(lights_l[2].resolve())]
        rejected = ids[str(lights_l[3].resolve())]
        row = lib.conn.execute("SELECT masters_used, output_path FROM lights WHERE frame_id = ?", (warned,)).fetchone()
        import json

        used = json.loads(row[0])
        lib.record_light_calibration(
            warned, status="calibrated", masters_used=used, output_path=str(lib.on_disk(row[1])),
            warnings=[f"looser dark match allowed by the sequence file: master #{used['dark']} differs in "
                      "temperature (-10.0 °C vs -8.0 °C)"],
        )  # fmt: skip
        lib.record_light_calibration(failed, status="failed", masters_used=used, reason="frame sizes differ")
        with lib.transaction() as c:
            c.execute("UPDATE frames SET state = 'rejected', reason = 'trailed stars' WHERE id = ?", (rejected,))
    _write_progress(root, night)
    write_status(root, night_status(root, night, lights_l[0]))
    return FinishedNight(
        root=root,
        night=night,
        lights={
            "calibrated": ids[str(lights_l[0].resolve())],
            "warned": warned,
            "failed": failed,
            "rejected": rejected,
            "no_masters": ids[str(lights_ha[0].resolve())],
        },
        master_ids=masters,
        group_count=len(extra_darks),
    )


def _write_progress(root: Path, night: str) -> None:
    import json

    (root / "nights").mkdir(exist_ok=True)
    (root / "nights" / f"{night}.json").write_text(json.dumps({
        "night": night, "state": "done", "started": f"{night}T18:00:00+00:00", "updated": f"{night}T23:59:00+00:00",
        "resumed": 0, "finished_activities": ["dusk_flats"], "warnings": ["dawn flats skipped: clouds"],
        "events": [{"time": f"{night}T18:00:00+00:00", "kind": "info", "text": "night started"},
                   {"time": f"{night}T23:00:00+00:00", "kind": "warning", "text": "dawn flats skipped: clouds"}],
    }))  # fmt: skip


def night_status(root: Path, night: str, last_frame: Path, state: str = "done", activity: str = "") -> NightStatus:
    start = dt.datetime.fromisoformat(f"{night}T17:00:00+00:00")

    def at(hours: float) -> dict[str, str]:
        moment = start + dt.timedelta(hours=hours)
        return {"utc": moment.isoformat(), "local": moment.isoformat()}

    plan = {
        "date": night, "site": "Test site", "timezone": "UTC", "start": at(0), "end": at(14),
        "dark": {"start": at(2), "end": at(12)},
        "sky_flat_windows": [{"period": "dusk", "start": at(0.5), "end": at(1.0), "reason": None},
                             {"period": "dawn", "start": at(13), "end": at(13.5), "reason": None}],
        "blocks": [{"target": "M 42", "filter": "L", "exposure": 60, "count": 40, "start": at(2), "end": at(6),
                    "setup": 0}],
        "gaps": [{"start": at(6), "end": at(8), "label": "darks", "items": ["dark 60 s x 20"]}],
        "events": {}, "visibility": [], "shortfalls": [],
    }  # fmt: skip
    status = NightStatus(night=night, state=state, activity=activity or "night finished", plan=plan)
    for i in range(30):
        status.record_cooler(-10.0 + (5.0 if i < 3 else 0.1 * (i % 3)), -10.0, 40.0, when=start + dt.timedelta(minutes=10 * i))
        status.record_weather(i < 20 or i > 24, "clear", when=start + dt.timedelta(minutes=10 * i))
    status.record_frame(last_frame, "light", target="M 42", filter="L", exposure=60)
    status.warn("dawn flats skipped: clouds")
    return status


@pytest.fixture(scope="session")
def finished_night(tmp_path_factory: pytest.TempPathFactory) -> FinishedNight:
    return build_finished_night(tmp_path_factory.mktemp("web-night"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    root: Path
    token: str | None


def serve(root: Path, token: str | None = TOKEN) -> Iterator[LiveServer]:
    import uvicorn

    from agent.web.app import create_app
    from agent.web.security import WebSettings

    port = free_port()
    app = create_app(WebSettings(data_dir=root, host="127.0.0.1", port=port, token=token, policy=MIN5))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "web server did not start"
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", root, token)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_server(finished_night: FinishedNight) -> Iterator[LiveServer]:
    yield from serve(finished_night.root)
