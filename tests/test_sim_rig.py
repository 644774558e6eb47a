"""The simulated observatory through the real indiserver and obsagent's device layer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from agent.errors import CorruptFile, ExposureFailed, IndiError, IndiTimeout, PropertyAlert
from indi_sim.model import SimModel, sky_flux_e_s
from tests import sim_fixtures
from tests.sim_fixtures import needs_indiserver

# fixtures used by name below
sim_server = sim_fixtures.sim_server
sim_rig = sim_fixtures.sim_rig

pytestmark = [pytest.mark.indi, needs_indiserver]

Rig = Any


def truth_model(rig: Rig) -> SimModel:
    """The same model the driver runs (same preset, seed and size), for its truth maps."""
    cfg = rig.server.config
    return SimModel(cfg.preset, seed=cfg.seed, width=cfg.width, height=cfg.height)


def fault(rig: Rig, device: str, *names: str) -> None:
    rig.client.set_switch(device, "SIM_FAULTS", list(names))


def test_darks_scale_with_exposure_temperature_and_show_truth(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(preset="ccd", time_factor=120, cosmic_rays=False)
    cam = rig.camera
    model = truth_model(rig)
    truth = model.truth()
    g = truth.gain_e_per_adu(0)
    pedestal = truth.pedestal_adu(model.spec.offset_default)

    cam.set_temperature(4.0)
    cam.wait_temperature(4.0, tolerance=0.25, timeout=30)
    d60 = cam.expose(60, "dark").data.astype(np.float64)
    d120 = cam.expose(120, "dark").data.astype(np.float64)
    assert abs(float(cam.expose(60, "dark").header["CCD-TEMP"]) - 4.0) < 0.3
    cam.set_temperature(10.0)
    cam.wait_temperature(10.0, tolerance=0.25, timeout=30)
    warm = cam.expose(120, "dark").data.astype(np.float64)

    s60, s120, s_warm = (float(np.median(d)) - pedestal for d in (d60, d120, warm))
    assert s120 / s60 == pytest.approx(2.0, rel=0.15)
    assert s_warm / s120 == pytest.approx(2.0, rel=0.15)  # +6 degC doubles
    assert s120 * g == pytest.approx(float(np.median(truth.dark_electrons(120, 4.0))), rel=0.15)

    hp = truth.hot_pixels
    hot = hp.dark_e_s * model.thermal_factor(10.0) * 120 / g > 200  # clearly above noise
    assert hot.any()
    assert np.all(warm[hp.y[hot], hp.x[hot]] > np.median(warm) + 100)


def test_bias_level_moves_with_offset_and_amp_glow_is_where_truth_says(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(time_factor=60, cosmic_rays=False)
    cam = rig.camera
    truth = truth_model(rig).truth()
    cam.set_offset(10)
    low = cam.expose(0, "bias")
    cam.set_offset(40)
    high = cam.expose(0, "bias")
    assert high.header["OFFSET"] == 40
    diff = float(high.data.mean()) - float(low.data.mean())
    assert diff == pytest.approx(truth.pedestal_adu(40) - truth.pedestal_adu(10), abs=2.0)

    dark = cam.expose(600, "dark").data.astype(np.float64)  # cap is closed at start
    glow = truth.amp_glow_e
    y, x = np.unravel_index(np.argmax(glow), glow.shape)
    h, w = dark.shape
    assert dark[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].mean() > dark[h // 2 - 8 : h // 2 + 8, w // 2 - 8 : w // 2 + 8].mean() + 30


def test_panel_flats_follow_brightness_exposure_and_truth_shape(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(time_factor=30, cosmic_rays=False)
    cam, panel, wheel = rig.camera, rig.panel, rig.wheel
    model = truth_model(rig)
    truth = model.truth()
    panel.close_cap()
    panel.light(True)
    bias = truth.bias_adu(model.spec.offset_default)

    def level(brightness: float, exposure: float) -> float:
        panel.set_brightness(brightness)
        return float((cam.expose(exposure, "flat").data - bias).mean())

    base = level(40, 1.0)
    assert level(40, 2.0) / base == pytest.approx(2.0, rel=0.03)
    assert level(80, 1.0) / base == pytest.approx(2.0, rel=0.03)

    wheel.move_to("Ha")
    panel.set_brightness(255)
    exposure = 6000.0 / truth.panel_flux_e_s(255, "Ha")
    frames = [cam.expose(exposure, "flat") for _ in range(3)]
    assert frames[0].header["FILTER"] == "Ha"
    flat = np.mean([f.data - bias for f in frames], axis=0)
    shape = truth.flat_shape("Ha")
    ratio = flat / (shape * flat.mean() / shape.mean())
    assert np.std(ratio) < 0.015
    # the L flat's shape does not fit the Ha flat as well (different dust per filter)
    other = truth.flat_shape("L")
    assert np.std(flat / (other * flat.mean() / other.mean())) > np.std(ratio)


def test_dusk_sky_fades_with_the_sun_and_night_shows_stars(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(time_factor=60, cosmic_rays=False, start="2026-12-01T15:20:00")
    cam, panel = rig.camera, rig.panel
    model = truth_model(rig)
    truth = model.truth()
    panel.open_cap()
    pedestal = truth.pedestal_adu(model.spec.offset_default)
    g = truth.gain_e_per_adu(model.spec.gain_default)
    levels = []
    for _ in range(3):
        frame = cam.expose(0.05, "flat")
        sun = float(frame.header["SUNALT"])
        measured = (float(np.median(frame.data)) - pedestal) * g / 0.05
        expected = sky_flux_e_s(sun) * model.pixel_area_factor() * float(np.median(truth.flat_shape("L", "sky")))
        assert measured == pytest.approx(expected, rel=0.1)
        levels.append((sun, measured))
        time.sleep(2.0)
    suns = [s for s, _ in levels]
    fluxes = [f for _, f in levels]
    assert suns == sorted(suns, reverse=True) and fluxes == sorted(fluxes, reverse=True)

    rig.client.set_number(rig.server.config.clock_name, "SIM_TIME_FACTOR", {"TIME_FACTOR": 3000})
    time.sleep(2.0)  # about 100 simulated minutes
    rig.client.set_number(rig.server.config.clock_name, "SIM_TIME_FACTOR", {"TIME_FACTOR": 60})
    cam.time_factor = 60
    night = cam.expose(30, "light")
    assert float(night.header["SUNALT"]) < -12
    data = night.data.astype(np.float64)
    mad = np.median(np.abs(data - np.median(data))) * 1.4826
    assert np.count_nonzero(data > np.median(data) + 15 * mad) >= 2


def test_time_factor_shortens_exposures(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(time_factor=60)
    t0 = time.monotonic()
    frame = rig.camera.expose(60, "dark")
    wall = time.monotonic() - t0
    assert frame.header["EXPTIME"] == 60
    assert 0.8 < wall < 3.0
    clock = rig.client.get(rig.server.config.clock_name, "SIM_CLOCK").values
    assert clock["TIME_FACTOR"] == "60" and clock["UTC"].startswith("2026-12-01T15:")


def test_exposure_that_never_completes_is_reported(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(time_factor=60)
    fault(rig, rig.camera.name, "FAULT_EXPOSURE_HANG")
    with pytest.raises(ExposureFailed, match="no image within"):
        rig.camera.expose(1, "dark", timeout=3)


@pytest.mark.parametrize("name", ["FAULT_BLOB_TRUNCATED", "FAULT_BLOB_CORRUPT"])
def test_broken_image_is_reported(sim_rig: Callable[..., Rig], name: str) -> None:
    rig = sim_rig(time_factor=60)
    fault(rig, rig.camera.name, name)
    with pytest.raises(CorruptFile, match="Sim Camera"):
        rig.camera.expose(1, "dark")
    fault(rig, rig.camera.name)  # all faults off: the next frame is fine
    assert rig.camera.expose(1, "dark").data.shape == (192, 256)


def test_driver_exit_is_reported(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(time_factor=60)
    fault(rig, rig.camera.name, "FAULT_DRIVER_EXIT")
    t0 = time.monotonic()
    with pytest.raises(IndiError):
        rig.camera.expose(60, "dark")
    assert time.monotonic() - t0 < 20


def test_weak_cooler_never_reaches_set_point(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(time_factor=120, faults=["FAULT_COOLER_WEAK"])
    rig.camera.set_temperature(-10.0)
    with pytest.raises(IndiTimeout, match="did not reach -10"):
        rig.camera.wait_temperature(-10.0, timeout=4)
    assert rig.camera.temperature() > 10.0 - 5.0 - 0.5  # ambient 10, at most 5 degC of cooling


def test_cap_jam_is_reported(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(time_factor=20)
    fault(rig, rig.panel.name, "FAULT_CAP_JAM")
    with pytest.raises(PropertyAlert, match="jammed"):
        rig.panel.open_cap()
    # the simulator left it closed, but after an Alert the DustCap interface calls the position
    # unknown (indidustcapinterface.cpp), and so do we: the next command moves it and verifies
    assert rig.panel.cap_closed() is None


def test_server_restart_then_reconnect(sim_rig: Callable[..., Rig]) -> None:
    rig = sim_rig(time_factor=60)
    server = rig.server
    server.stop()
    deadline = time.monotonic() + 10
    while rig.client.connected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not rig.client.connected
    server.start()
    rig.client.reconnect(deadline_s=20)
    rig.camera.connect()
    assert rig.camera.expose(1, "bias").data.shape == (192, 256)
