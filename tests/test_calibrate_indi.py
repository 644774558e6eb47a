"""Calibration end to end through INDI: frames captured from the simulator under a real indiserver,
masters built from the files, lights calibrated by `obsagent calibrate`, checked against truth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.cli import main
from agent.stacking.products import read_product
from agent.stacking.recipes import build_master
from indi_sim.model import SimModel
from tests import sim_fixtures
from tests.sim_fixtures import needs_indiserver

sim_server = sim_fixtures.sim_server
sim_rig = sim_fixtures.sim_rig

pytestmark = [pytest.mark.indi, needs_indiserver]


def test_frames_from_indi_calibrate_to_the_true_sky(sim_rig: Callable[..., Any], tmp_path: Path) -> None:
    rig = sim_rig(time_factor=240, cosmic_rays=False, start="2026-12-01T22:00:00")
    cam, panel = rig.camera, rig.panel
    cfg = rig.server.config
    model = SimModel(cfg.preset, seed=cfg.seed, width=cfg.width, height=cfg.height)
    truth = model.truth()
    exposure, n = 60.0, 7

    def capture(kind: str, exp: float, frame_type: str) -> list[Path]:
        return [cam.expose(exp, frame_type).write(tmp_path / f"{kind}_{i}.fits") for i in range(n)]

    panel.close_cap()
    panel.light(False)
    darks = capture("dark", exposure, "dark")
    panel.light(True)
    panel.set_brightness(100)
    g = truth.gain_e_per_adu(model.spec.gain_default)
    flat_exposure = round(0.4 * 65535 * g / truth.panel_flux_e_s(100, "L"), 3)  # about 40 % of full scale
    flats = capture("flat", flat_exposure, "flat")
    panel.light(False)
    darkflats = capture("darkflat", flat_exposure, "dark")
    panel.open_cap()
    lights = capture("light", exposure, "light")[:2]

    mdf = build_master("darkflat", darkflats)
    mf = build_master("flat", flats, darkflat=mdf)
    assert mf.issues == [] and mf.header["FLATCAL"] == "darkflat"
    md = build_master("dark", darks)
    md.write(tmp_path / "master_dark.fits")
    mf.write(tmp_path / "master_flat.fits")

    out = tmp_path / "cal"
    code = main(["calibrate", *map(str, lights), "-o", str(out), "--dark", str(tmp_path / "master_dark.fits"),
                 "--flat", str(tmp_path / "master_flat.fits"), "--json"])
    assert code == 0
    frames = []
    for i in range(2):
        stored, hdr = read_product(out / f"light_{i}_cal.fits")  # products are ADU / 65535 on disk
        frames.append(stored.astype(np.float64))
        assert hdr["CALSTAT"] == "DF" and hdr["CLIPLO"] == 0  # only saturated star cores may clip high
    data = np.mean(frames, axis=0)
    # the night sky plus star light, flat-fielded: the field's median is the sky level
    sky = truth.sky_flux_e_s(-90.0, "L") * exposure / g
    level = float(np.median(data))
    assert level == pytest.approx(sky, rel=0.1)
    glow = truth.amp_glow_at(exposure, 0.0) / g
    corner = (slice(0, 6), slice(cfg.width - 6, None))
    assert float(glow[corner].mean()) > 50.0  # the raw light's corner glows...
    sigma = 1.4826 * float(np.median(np.abs(data - level)))
    resid = float(np.mean(data[corner])) - level
    assert abs(resid) < 4.0 * sigma / np.sqrt(data[corner].size)  # ...the calibrated one is sky within noise
