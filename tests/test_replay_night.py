"""A short whole night (`obsagent run`) against replayed real drivers (`indi_sim/replay/profiles.py`).

Each night drives one camera family with a panel set-up and the EQMod mount: ZWO ASI cooled
(indi-asi/asi_base.cpp) with the Alnitak Flip-Flat (flip_flat.cpp), QHY with its CFW
(indi-qhy/qhy_ccd.cpp, READ_MODE) with the Deep Sky Dad FP (deepskydad_fp.cpp), Player One
(indi-playerone/playerone_base.cpp, SENSOR_MODE, write-only CCD_COOLER) with a light-only Pegasus
FlatMaster plus an Alnitak dust cover (pegasus_flatmaster.cpp, flip_flat.cpp), the uncooled ZWO,
Touptek (indi-toupbase/indi_toupbase.cpp), Atik Horizon (indi-atik/atik_ccd.cpp) and SBIG
(indi-sbig/sbig_ccd.cpp). The replay driver hosts a `Replay Clock` (SIM_CLOCK) so the night runs in
simulated time, fast-forwarded while nothing is due. Every camera starts with what another client
left in its config (compression, native transfer, local upload, 8-bit, a sub-frame).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from agent.commands.run import sim_start_for
from agent.config import load_sequence
from indi_sim.replay.launch import ReplayServer
from indi_sim.replay.profiles import PROFILES
from tests.indi_fixtures import needs_indiserver

pytestmark = [pytest.mark.indi, needs_indiserver]

NIGHT = dt.date(2026, 11, 22)
FACTOR = 200.0
PANELS = {"flipflat": ("Flip Flat", None), "dsd_fp": ("Deep Sky Dad FP", None),
          "pegasus_light+alnitak_cover": ("Pegasus FlatMaster", "Alnitak Dust Cover")}
NIGHTS = {  # camera profile -> (panel set-up, readout mode for the lights, sensor)
    "asi_cooled": ("flipflat", None, "cmos"),
    "qhy_wheel": ("dsd_fp", "1", "cmos"),
    "playerone": ("pegasus_light+alnitak_cover", "LowNoise", "cmos"),
    "asi_uncooled": ("flipflat", None, "cmos"),
    "touptek": ("dsd_fp", "HCG", "cmos"),
    "atik_horizon": ("flipflat", "Custom", "cmos"),
    "sbig": ("dsd_fp", None, "ccd"),
}
LIGHTS = 2


def write_sequence(tmp: Path, camera_key: str) -> Path:
    panel_key, mode, sensor = NIGHTS[camera_key]
    panel, cap = PANELS[panel_key]
    devices = {"camera": PROFILES[camera_key].device, "flat_panel": panel, "mount": "EQMod Mount"}
    if cap:
        devices["dust_cap"] = cap
    camera: dict[str, object] = {"sensor": sensor}
    if camera_key != "asi_uncooled":
        camera |= {"set_point": -10, "set_point_tolerance": 1.0}
    if mode:
        camera["readout_mode"] = mode
    seq = {
        "version": 1,
        "site": {"name": "Berlin", "latitude": 52.52, "longitude": 13.40, "elevation": 40,
                 "timezone": "Europe/Berlin", "horizon": 15},
        "indi": {"devices": devices},
        "camera": camera,
        "filters": ["L"],
        "targets": [{"name": "M31", "min_altitude": 35, "priority": 1,
                     "exposures": [{"filter": "L", "exposure": 60, "count": LIGHTS}]}],
        "calibration": {
            "flats": {"source": "panel"},
            "bias": {"count": 2 if sensor == "ccd" else 0},
            "masters": {k: {"min_frames": 2, "max_age_days": 30} for k in ("bias", "dark", "darkflat", "flat")},
        },
    }
    path = tmp / "night.yaml"
    path.write_text(yaml.safe_dump(seq, sort_keys=False))
    return path


CONCURRENT = 3  # nights run side by side: each mostly waits, so the file stays near two minutes


@dataclass
class NightRun:
    returncode: int
    output: str
    data: Path


def run_night(camera_key: str, tmp: Path) -> NightRun:
    tmp.mkdir(parents=True, exist_ok=True)
    seq_path = write_sequence(tmp, camera_key)
    start = sim_start_for(load_sequence(seq_path), NIGHT).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    profiles = [camera_key, *NIGHTS[camera_key][0].split("+"), "eqmod"]
    data = tmp / "data"
    with ReplayServer(profiles, time_factor=FACTOR, clock_start=start, log_dir=str(tmp)) as server:
        result = subprocess.run(
            [sys.executable, "-m", "agent.cli", "run", str(seq_path), "--indi", server.address,
             "--date", NIGHT.isoformat(), "--data", str(data), "--fast-forward", "20000", "--quiet"],
            capture_output=True, text=True, timeout=300,
        )
    return NightRun(result.returncode, result.stdout[-3000:] + result.stderr[-3000:], data)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NightRun]:
    """Every profile's night, run once for the module, a few at a time."""
    root = tmp_path_factory.mktemp("replay-nights")
    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        futures = {key: pool.submit(run_night, key, root / key) for key in NIGHTS}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("camera_key", list(NIGHTS))
def test_short_night_against_replayed_drivers(camera_key: str, nights: dict[str, NightRun]) -> None:
    run = nights[camera_key]
    assert run.returncode == 0, run.output
    conn = sqlite3.connect(run.data / "library.sqlite")
    conn.row_factory = sqlite3.Row
    with conn:
        lights = conn.execute(
            "SELECT f.width, f.height, f.readout_mode, l.status, l.reason FROM lights l "
            "JOIN frames f ON f.id = l.frame_id").fetchall()
        assert len(lights) == LIGHTS
        for light in lights:
            assert (light["width"], light["height"]) == (128, 96)  # the sub-frame left behind was undone
            assert light["status"] == "calibrated", light["reason"]
        mode = NIGHTS[camera_key][1]
        if mode is not None:
            assert {light["readout_mode"] for light in lights} == {mode}
        kinds = {r[0] for r in conn.execute("SELECT DISTINCT frame_type FROM masters")}
        assert {"dark", "flat"} <= kinds
