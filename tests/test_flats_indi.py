"""Flats through a real indiserver: the stock simulators (panel ignored) and the obsagent simulator."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from agent.flats.panel_run import directory_sink, run_panel_flats
from agent.flats.panel_search import ExposureLimits
from agent.flats.target import FlatTarget
from agent.flats.trained import TrainedPanelTable
from indi_sim.server import IndiServer
from tests.indi_fixtures import needs_indiserver

pytestmark = [pytest.mark.indi, needs_indiserver]


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_stock_simulators_report_that_the_flat_level_ignores_the_panel(stock_server: IndiServer,
                                                                       tmp_path: Path) -> None:
    """The stock CCD simulator's flats are a constant ~65000: the run ends and says so, no loop."""
    result = run_cli("flats", "--indi", stock_server.address, "--source", "panel", "--filters", "Red,Blue",
                     "--count", "2", "--bin", "4", "--data", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 1, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "ignores the panel" in text
    assert "skipped" in text  # the second filter is not searched again
    assert not list((tmp_path / "out").rglob("*.fits"))


@pytest.fixture
def sim_panel_rig(sim_rig: Callable[..., Any]) -> Any:
    return sim_rig(time_factor=20.0, width=128, height=96)


def test_panel_flats_on_the_simulator_land_on_target_then_reuse_the_training(sim_panel_rig: Any,
                                                                             tmp_path: Path) -> None:
    rig = sim_panel_rig
    target = FlatTarget()
    table = TrainedPanelTable.in_data_dir(tmp_path)
    needs = {"L": 3, "R": 3}
    first = run_panel_flats(rig, needs, target, table, directory_sink(tmp_path / "run1"), limits=ExposureLimits())
    assert first.ok, [(o.filter, o.error, o.rejected) for o in first.outcomes]
    for outcome in first.outcomes:
        assert not outcome.trained and 0 < outcome.test_frames <= 8
        assert len(outcome.flats) == 3 and len(outcome.dark_flats) == 3
        for path in outcome.flats:
            level = float(fits.getdata(path)[::2, ::2].astype(float).mean())
            assert target.low * 0.98 <= level <= target.high * 1.02
        flat_exp = {fits.getheader(p)["EXPTIME"] for p in outcome.flats}
        dark_exp = {fits.getheader(p)["EXPTIME"] for p in outcome.dark_flats}
        assert flat_exp == dark_exp and len(flat_exp) == 1  # dark flats match their flats' exposure exactly
        assert all(fits.getheader(p)["IMAGETYP"] == "Dark Flat" for p in outcome.dark_flats)
    assert rig.panel.cap_closed() is True

    second = run_panel_flats(rig, {"L": 2}, target, TrainedPanelTable.in_data_dir(tmp_path),
                             directory_sink(tmp_path / "run2"), dark_flats=False)
    (outcome,) = second.outcomes
    assert outcome.trained and outcome.test_frames == 0 and len(outcome.flats) == 2
    assert all(target.within(level) for level in outcome.levels)


def test_a_declared_14_bit_camera_is_not_flagged_when_it_sends_16_bit_raw(sim_panel_rig: Any, tmp_path: Path) -> None:
    """CCD_INFO says 16 for a 14-bit sensor read as 16-bit raw: only a depth the camera cannot be
    sending (8 here) is noted, by the night's start-up rule."""
    rig = sim_panel_rig
    table = TrainedPanelTable.in_data_dir(tmp_path)

    def bit_notes(declared: int) -> list[str]:
        report = run_panel_flats(rig, {"L": 0}, FlatTarget(), table, directory_sink(tmp_path / "out"),
                                 dark_flats=False, light_bit_depth=declared)  # fmt: skip
        return [n for n in report.notes if "bit" in n]

    assert bit_notes(14) == [] and bit_notes(16) == []
    [note] = bit_notes(8)
    assert "camera.bit_depth is 8" in note and "16-bit pixels" in note


def test_sky_flats_cli_on_the_simulator_at_dusk(sim_server: Callable[..., Any], tmp_path: Path) -> None:
    """One accelerated dusk through indiserver: mount pointed, cap opened, every filter gets its flats."""
    server = sim_server(time_factor=30.0, width=128, height=96, lat=52.0, lon=13.4, start="2026-12-01T15:05:30")
    result = run_cli("flats", "--indi", server.address, "--source", "sky", "--filters", "L,R,Ha", "--count", "3",
                     "--period", "dusk", "--data", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--mount", server.config.mount_name, "--panel", server.config.panel_name, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    files = sorted((tmp_path / "out" / "flat").glob("*.fits"))
    assert len(files) == 9
    target = FlatTarget()
    for path in files:
        header = fits.getheader(path)
        assert header["IMAGETYP"] == "Flat Field"
        level = float(fits.getdata(path)[::2, ::2].astype(float).mean())
        assert target.low * 0.98 <= level <= target.high * 1.02
    assert (tmp_path / "flats" / "twilight.json").exists()  # the twilight was learned for the next night
