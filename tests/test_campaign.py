"""Campaigns: counts are totals over nights, progress is the library's good lights, a finished
entry leaves the plan, a night's cap holds, flats follow the light sessions at their cadence."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from library_fixtures import nina_header, write_frame
from planner_fixtures import SITES, make_sequence

from agent.cli import main
from agent.config import Sequence, parse_sequence
from agent.config.loading import SequenceError
from agent.library.captures import capture_path
from agent.library.queries.campaign import campaign_progress, campaign_remaining, entry_progress
from agent.library.queries.flat_history import flat_history, flats_due, flats_wanted
from agent.library.store import Library
from agent.planner import plan_night

CAMERA = "CCD Simulator"  # the camera make_sequence names; the night writes it as INSTRUME
DECEMBER = dt.date(2026, 12, 15)


def _m42(*exposures: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "M42", "ra": 83.82, "dec": -5.39, "exposures": list(exposures), **extra}


def _seq(*targets: dict[str, Any], flats: dict[str, Any] | None = None) -> Sequence:
    calibration = {"flats": {"source": "sky-both", **(flats or {})}, "masters": {"flat": {"min_frames": 3,
                                                                                          "max_age_days": 14}}}
    return make_sequence(SITES["52N"], list(targets), calibration=calibration)


class Night:
    """Writes frames where and as the night writes them, and ingests them through the library's door."""

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self.index = 0

    def light(self, night: str, target: str, filt: str, exposure: float, *, readout: str | None = None,
              status: str | None = None) -> Path:  # fmt: skip
        self.index += 1
        path = capture_path(self.lib.frames_dir / night, "light", exposure, self.index, filt, target)
        write_frame(path, nina_header("light", exposure, filt=filt, readout=readout, camera=CAMERA), seed=self.index)
        result = self.lib.ingest_file(path)
        assert result.status == "added"
        if status is not None:
            self.lib.record_light_calibration(result.frame_id, status=status, masters_used={}, reason="test")
        return path

    def junk_light(self, night: str, target: str, filt: str, exposure: float) -> None:
        self.index += 1
        path = capture_path(self.lib.frames_dir / night, "light", exposure, self.index, filt, target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a FITS file")
        assert self.lib.ingest_file(path).status == "quarantined"

    def flats(self, night: str, filt: str, n: int) -> list[int]:
        ids = []
        for _ in range(n):
            self.index += 1
            path = capture_path(self.lib.frames_dir / night, "flat", 1.0, self.index, filt)
            write_frame(path, nina_header("flat", 1.0, filt=filt, camera=CAMERA), level=30000, seed=self.index)
            result = self.lib.ingest_file(path)
            assert result.status == "added", result.reason
            ids.append(result.frame_id)
        return ids


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    with Library.open(tmp_path / "data") as library:
        yield library  # type: ignore[misc]


def test_progress_counts_good_lights_of_the_entry_over_all_nights(lib: Library) -> None:
    seq = _seq(_m42({"filter": "L", "exposure": 60, "count": 5}, {"filter": "R", "exposure": 60, "count": 2}))
    night = Night(lib)
    for _ in range(2):
        night.light("2026-12-14", "M42", "L", 60)
    night.light("2026-12-15", "M42", "L", 60)
    night.light("2026-12-15", "M42", "L", 60, status="calibrated")
    night.light("2026-12-15", "M42", "L", 60, status="failed")  # the clipping gate refused it
    night.junk_light("2026-12-15", "M42", "L", 60)  # quarantined at the door
    night.light("2026-12-15", "M42", "L", 120)  # another exposure
    night.light("2026-12-15", "M31", "L", 60)  # another target
    night.light("2026-12-15", "M42", "R", 60)

    l_entry, r_entry = campaign_progress(lib, seq, "2026-12-15")
    assert (l_entry.done, l_entry.total, l_entry.finished) == (4, 5, False)
    assert l_entry.nights == ("2026-12-14", "2026-12-15") and l_entry.last_night == "2026-12-15"
    assert l_entry.tonight == 3  # the failed light took the night's time; the quarantined one is not kept
    assert (r_entry.done, r_entry.remaining) == (1, 1)
    # The same answer through a bare connection (as the web's read-only one).
    assert [p.done for p in campaign_progress(lib.conn, seq)] == [4, 1]
    night.light("2026-12-16", "M42", "L", 60)
    assert campaign_progress(lib, seq)[0].finished


def test_per_night_cap_bounds_a_night_and_the_total_bounds_the_campaign(lib: Library) -> None:
    seq = _seq(_m42({"filter": "Ha", "exposure": 60, "count": 12, "per_night": 5}))
    night = Night(lib)
    for i in range(5):
        night.light("2026-12-14", "M42", "Ha", 60, status="failed" if i == 0 else None)
    key = ("M42", "Ha", 60.0, None)
    assert campaign_remaining(lib, seq, "2026-12-14") == {key: 0}  # the night's share is spent
    assert campaign_remaining(lib, seq, "2026-12-15") == {key: 5}
    for _ in range(5):
        night.light("2026-12-15", "M42", "Ha", 60)
    # 9 good lights: the failed one is made up on the third night, which needs only 3.
    assert campaign_remaining(lib, seq, "2026-12-16") == {key: 3}


def test_readout_mode_tells_entries_apart_only_when_it_must(lib: Library) -> None:
    seq = _seq(_m42({"filter": "L", "exposure": 60, "count": 4, "readout_mode": "0"},
                    {"filter": "L", "exposure": 60, "count": 4, "readout_mode": "1"}))  # fmt: skip
    night = Night(lib)
    night.light("2026-12-14", "M42", "L", 60, readout="0")
    for _ in range(2):
        night.light("2026-12-14", "M42", "L", 60, readout="1")
    assert [p.done for p in campaign_progress(lib, seq)] == [1, 2]
    single = _seq(_m42({"filter": "L", "exposure": 60, "count": 4, "readout_mode": "High Gain"}))
    assert [p.done for p in campaign_progress(lib, single)] == [3]  # the driver's own label may differ


def test_finished_entries_leave_the_plan_and_the_dispatcher_uses_the_same_numbers(
    lib: Library, tmp_path: Path
) -> None:
    from agent.night.context import NightContext
    from agent.night.dispatch import remaining_in_block
    from agent.night.progress import ProgressStore, RunProgress

    seq = _seq(_m42({"filter": "L", "exposure": 60, "count": 3},
                    {"filter": "R", "exposure": 60, "count": 20, "per_night": 6}))  # fmt: skip
    first = plan_night(seq, DECEMBER)
    assert {(b.filter, b.count) for b in first.blocks} == {("L", 3), ("R", 6)}

    night = Night(lib)
    for _ in range(3):
        night.light("2026-12-14", "M42", "L", 60)
    for _ in range(6):
        night.light("2026-12-14", "M42", "R", 60)
    tonight = "2026-12-15"
    plan = plan_night(seq, DECEMBER, progress=campaign_progress(lib, seq, tonight))
    assert [(b.filter, b.count) for b in plan.blocks] == [("R", 6)]
    assert "M42 L 60s: campaign complete 3/3" in plan.notes
    assert "M42 R 60s: 6 tonight (per_night 6), 6/20 so far" in plan.notes

    data = lib.root
    ctx = NightContext(seq=seq, plan=plan, rig=None, clock=None, library=lib, data_dir=data,  # type: ignore[arg-type]
                       progress=RunProgress(night=tonight, started=""), progress_store=ProgressStore(data))
    block = plan.blocks[0]
    assert remaining_in_block(ctx, block) == block.count
    for _ in range(2):
        night.light(tonight, "M42", "R", 60)
    assert remaining_in_block(ctx, block) == 4
    for _ in range(4):
        night.light(tonight, "M42", "R", 60)
    assert remaining_in_block(ctx, block) == 0  # tonight's share taken, 8 still to go on later nights
    assert entry_progress(lib, seq, "M42", "R", 60, None, tonight).remaining == 8  # type: ignore[union-attr]


def test_flats_each_session_are_tonights_filters_as_before(lib: Library) -> None:
    seq = _seq(_m42({"filter": "L", "exposure": 60, "count": 10}))
    assert flats_due(seq, lib, "2026-12-15", planned=["L"]) == ["L"]
    assert flats_due(seq, lib, "2026-12-15") == []  # nothing imaged tonight
    assert flats_wanted(seq, lib, "2026-12-15", {"L": 2}, ["L"]) == {"L": 2}  # what the library lacks
    assert flats_wanted(seq, lib, "2026-12-15", {}, ["L"]) == {}  # a current master flat: none, as before
    Night(lib).flats("2026-12-15", "L", 3)  # dusk took a full set
    assert flats_due(seq, lib, "2026-12-15", planned=["L"]) == []  # dawn does not repeat it


def test_every_n_sessions_counts_the_filters_light_nights_since_its_flats(lib: Library) -> None:
    seq = _seq(_m42({"filter": "Ha", "exposure": 60, "count": 50}, {"filter": "L", "exposure": 60, "count": 50}),
               flats={"filter_cadence": {"Ha": 3}})  # fmt: skip
    night = Night(lib)
    assert flats_due(seq, lib, "2026-12-10", planned=["Ha"]) == ["Ha"]  # never had flats: due at once
    night.flats("2026-12-10", "Ha", 3)
    night.light("2026-12-10", "M42", "Ha", 60)
    night.light("2026-12-11", "M42", "Ha", 60)
    night.light("2026-12-12", "M42", "Ha", 60, status="failed")  # not a session: no good lights
    night.light("2026-12-13", "M42", "Ha", 60)
    history = {h.filter: h for h in flat_history(seq, lib, "2026-12-14")}
    assert history["Ha"].flat_nights == ("2026-12-10",)
    assert history["Ha"].sessions_since_flats("2026-12-14") == ("2026-12-11", "2026-12-13")
    assert flats_due(seq, lib, "2026-12-14") == []  # two sessions since
    assert flats_due(seq, lib, "2026-12-14", planned=["Ha", "L"]) == ["L", "Ha"]  # wheel order; Ha: the third
    # Due by cadence: a fresh set even with a current master flat, less what tonight already has.
    assert flats_wanted(seq, lib, "2026-12-14", {}, ["Ha"]) == {"Ha": 3}
    night.flats("2026-12-14", "Ha", 1)
    assert flats_wanted(seq, lib, "2026-12-14", {}, ["Ha"]) == {"Ha": 2}
    night.flats("2026-12-14", "Ha", 2)
    assert flats_due(seq, lib, "2026-12-14", planned=["Ha"]) == []
    assert flats_due(seq, lib, "2026-12-15", planned=["Ha"]) == []  # one session since the new flats


def test_rejected_flats_are_not_in_the_history(lib: Library) -> None:
    seq = _seq(_m42({"filter": "Ha", "exposure": 60, "count": 50}), flats={"cadence": 2})
    night = Night(lib)
    for frame_id in night.flats("2026-12-10", "Ha", 3):
        lib.reject_frame(frame_id, "star trails")
    night.light("2026-12-10", "M42", "Ha", 60)
    assert flat_history(seq, lib, "2026-12-11")[0].flat_nights == ()
    assert flats_due(seq, lib, "2026-12-11") == ["Ha"]  # as if it never had flats


def test_completion_cadence_waits_for_a_finished_target(lib: Library) -> None:
    seq = _seq(_m42({"filter": "Ha", "exposure": 60, "count": 2}), flats={"cadence": "completion"})
    night = Night(lib)
    night.light("2026-12-10", "M42", "Ha", 60)
    assert flats_due(seq, lib, "2026-12-10", planned=["Ha"]) == []  # half way
    night.light("2026-12-11", "M42", "Ha", 60)
    assert flats_due(seq, lib, "2026-12-11", planned=["Ha"]) == ["Ha"]  # finished tonight: dawn flats
    night.flats("2026-12-11", "Ha", 3)
    assert flats_due(seq, lib, "2026-12-11") == []
    assert flats_due(seq, lib, "2026-12-12") == []  # taken once, never again


def _sequence_file(tmp_path: Path) -> Path:
    data: dict[str, Any] = {
        "version": 1,
        "site": SITES["52N"],
        "indi": {"devices": {"camera": CAMERA, "wheel": "Filter Simulator"}},
        "camera": {"sensor": "cmos", "gain": 100},
        "filters": ["L", "Ha"],
        "targets": [
            _m42({"filter": "L", "exposure": 60, "count": 2}, {"filter": "Ha", "exposure": 300, "count": 5,
                                                                "per_night": 2}),
            {"name": "M31", "exposures": [{"filter": "L", "exposure": 60, "count": 3}]},
        ],
        "calibration": {"flats": {"source": "sky-both"}},
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(json.dumps(data))
    return path


def test_report_campaign_through_the_cli(lib: Library, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    night = Night(lib)
    for day in ("2026-12-14", "2026-12-15"):
        night.light(day, "M42", "L", 60)
    night.light("2026-12-15", "M42", "Ha", 300)
    night.light("2026-12-15", "M42", "Ha", 300, status="failed")
    seq_file = str(_sequence_file(tmp_path))
    data = str(lib.root)

    assert main(["report", "--campaign", "--sequence", seq_file, "--data", data, "--json"]) == 0
    targets = json.loads(capsys.readouterr().out)["targets"]
    m42, m31 = targets
    assert (m42["target"], m42["finished"], m42["nights"], m42["last_night"]) == ("M42", False, 2, "2026-12-15")
    assert [(e["filter"], e["done"], e["total"], e["finished"]) for e in m42["exposures"]] == [
        ("L", 2, 2, True), ("Ha", 1, 5, False)
    ]  # fmt: skip
    assert (m31["done"], m31["total"], m31["nights"], m31["last_night"]) == (0, 3, 0, None)

    assert main(["report", "--campaign", "--sequence", seq_file, "--data", data]) == 0
    text = capsys.readouterr().out
    assert "M42: 3/7 (2 nights, last 2026-12-15)" in text
    assert "   2/2" in text and "complete" in text and "2 a night" in text

    assert main(["report", "--campaign", "--data", data]) == 2
    err = capsys.readouterr().err
    assert "--campaign needs --sequence FILE" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"per_night": 9}, "per_night (9) exceeds count (5)"),
        ({"flats": {"cadence": 0}}, "cadence 0"),
        ({"flats": {"cadence": "weekly"}}, "cadence 'weekly': write session, completion, or a number"),
        ({"flats": {"filter_cadence": {"OIII": 2}}}, "filter 'OIII' is not in the wheel"),
    ],
)
def test_campaign_settings_are_checked(change: dict[str, Any], message: str) -> None:
    entry = {"filter": "L", "exposure": 60, "count": 5, **{k: v for k, v in change.items() if k != "flats"}}
    data = {
        "version": 1,
        "site": SITES["52N"],
        "indi": {"devices": {"camera": CAMERA, "wheel": "W"}},
        "camera": {"sensor": "cmos"},
        "filters": ["L", "Ha"],
        "targets": [_m42(entry)],
        "calibration": {"flats": {"source": "sky-both", **change.get("flats", {})}},
    }
    with pytest.raises(SequenceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sequence(json.dumps(data), "bad.yaml")
    good = {**data, "targets": [_m42({"filter": "L", "exposure": 60, "count": 5, "per_night": 5})],
            "calibration": {"flats": {"source": "sky-both", "cadence": "completion", "filter_cadence": {"Ha": 3}}}}
    assert parse_sequence(json.dumps(good), "good.yaml").calibration.flats.filter_cadence == {"Ha": 3}


def test_plan_through_the_cli_plans_what_the_campaign_still_needs(
    lib: Library, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    night = Night(lib)
    for day in ("2026-12-13", "2026-12-14"):
        night.light(day, "M42", "L", 60)  # M42 L is complete: 2 of 2
    seq_file = str(_sequence_file(tmp_path))

    def planned(data: Path) -> tuple[set[tuple[str, str]], list[str]]:
        assert main(["plan", seq_file, "--date", "2026-12-15", "--json", "--data", str(data)]) == 0
        plan = json.loads(capsys.readouterr().out)
        return {(b["target"], b["filter"]) for b in plan["blocks"]}, plan["notes"]

    blocks, notes = planned(lib.root)
    assert ("M42", "L") not in blocks and ("M42", "Ha") in blocks
    assert "M42 L 60s: campaign complete 2/2" in notes
    fresh = tmp_path / "no-library-yet"
    blocks, _ = planned(fresh)  # a folder without a library: the file's counts, nothing created
    assert ("M42", "L") in blocks and not fresh.exists()
