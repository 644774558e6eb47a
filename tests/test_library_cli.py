"""`obsagent library ...` through the real CLI entry point, with --json, and needs() counts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from library_fixtures import add_master, light_key, nina_header, write_series

from agent.cli import main
from agent.library.keys import FrameType, LibraryPolicy
from agent.library.needs import PlannedLight, needs
from agent.library.store import Library


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["library", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ingest_status_frames_needs_and_camera_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_series(tmp_path / "in" / "darks", "dark", [nina_header("dark", 60) for _ in range(3)])
    write_series(tmp_path / "in" / "lights", "light", [nina_header("light", 60, filt="L") for _ in range(2)])
    (tmp_path / "in" / "junk.fits").write_text("junk")
    data = str(tmp_path / "data")
    out = _json(capsys, "ingest", str(tmp_path / "in"), "--data", data)
    assert out["counts"] == {"added": 5, "quarantined": 1}
    status = _json(capsys, "status", "--data", data)
    assert status["frames"]["accumulating/dark"] == 3 and status["lights"] == {"pending": 2}
    quarantined = _json(capsys, "frames", "--state", "quarantined", "--data", data)
    assert len(quarantined) == 1 and "junk.fits" in quarantined[0]["path"]
    listed = _json(capsys, "needs", "--data", data)["needs"]
    missing = {(n["frame_type"], n["have"], n["target"]) for n in listed if n["kind"] == "missing"}
    assert missing == {("dark", 3, 20), ("flat", 0, 20)}
    cams = _json(capsys, "camera", "ZWO ASI294MC Pro", "--kind", "ccd", "--data", data)
    assert cams == [{"name": "ZWO ASI294MC Pro", "sensor_kind": "ccd", "frames": 5}]
    listed = _json(capsys, "needs", "--data", data)["needs"]
    assert {n["frame_type"] for n in listed if n["kind"] == "missing"} == {"bias", "dark", "flat"}
    assert _json(capsys, "masters", "--data", data) == []
    lights = _json(capsys, "lights", "--data", data)
    assert [row["status"] for row in lights] == ["pending", "pending"]


def test_ingest_queues_the_masters_it_builds_for_upload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_series(tmp_path / "in", "dark", [nina_header("dark", 30) for _ in range(5)])
    data = str(tmp_path / "data")
    out = _json(capsys, "ingest", str(tmp_path / "in"), "--data", data, "--min-frames", "dark=5")
    built = out["sweep"]["masters_built"]
    assert len(built) == 1
    with Library(Path(data)) as lib:
        queued = [int(r[0]) for r in lib.conn.execute("SELECT master_id FROM sync_outbox")]
    assert queued == built
    assert _json(capsys, "status", "--data", data)["sync"]["queued"] == 1


def test_bad_policy_option_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["library", "needs", "--data", str(tmp_path), "--min-frames", "dark"]) == 2
    assert "TYPE=VALUE" in capsys.readouterr().err


def test_needs_orders_plan_before_lights_and_reports_expiring(tmp_path: Path) -> None:
    now = time.time()
    with Library(tmp_path) as lib:
        write_series(tmp_path / "in", "light", [nina_header("light", 120, filt="R")])
        lib.ingest_paths([tmp_path / "in"])
        light = light_key()
        add_master(
            lib, light.for_type(FrameType.DARK, 60.0), created=now - 80 * 86400, expires=now + 3 * 86400
        )
        add_master(lib, light.for_type(FrameType.FLAT))
        items = needs(lib, LibraryPolicy(), plan=[PlannedLight(light_key(filter="Ha"), 60.0)], now=now)
        kinds = [(n.kind, n.source, n.frame_type.value, n.key.filter) for n in items]
    assert kinds[0] == ("missing", "plan", "flat", "Ha")
    assert ("missing", "lights", "dark", None) in kinds and ("missing", "lights", "flat", "R") in kinds
    assert ("expiring", "library", "dark", None) in kinds
    assert kinds.index(("missing", "lights", "dark", None)) < kinds.index(
        ("expiring", "library", "dark", None)
    )
