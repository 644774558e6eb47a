"""Panel flat exposure control on the simulator model (no INDI): every curve converges, fast, and never loops."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agent.flats.panel_search import ExposureLimits, PanelSearch, panel_settings
from agent.flats.target import FlatTarget, PanelIgnored, PanelTooBright, PanelTooDim, frame_level
from agent.flats.trained import FlatStoreError, TrainedPanelTable
from indi_sim.model import Optics, SimModel

# Brightness curves of real panels: setting fraction (0..1) -> light fraction (0..1).
CURVES: dict[str, Callable[[float], float]] = {
    "linear": lambda x: x,
    "gamma 2.2": lambda x: x**2.2,
    "gamma 0.5": lambda x: x**0.5,
    "offset": lambda x: max(0.0, (x - 0.3) / 0.7),
    "saturating": lambda x: (1 - math.exp(-x / 0.15)) / (1 - math.exp(-1 / 0.15)),
}
PANEL_FLUX = {"dim panel": 10_000.0, "bright panel": 300_000.0}


def panel_camera(model: SimModel, curve: Callable[[float], float], filter_name: str,
                 max_setting: float = 255.0) -> Callable[[float | None, float], float]:
    """A `take(brightness, exposure)` that renders a flat through a panel with this brightness curve."""

    def take(brightness: float | None, exposure: float) -> float:
        fraction = 1.0 if brightness is None else brightness / max_setting
        light = model.optics.panel_max_brightness * curve(fraction)
        return frame_level(model.render("flat", exposure, filter=filter_name, panel_brightness=light, cap_closed=True))

    return take


@pytest.fixture(scope="module", params=list(PANEL_FLUX))
def model(request: pytest.FixtureRequest) -> SimModel:
    return SimModel("small", seed=5, width=96, height=64, optics=Optics(panel_flux_e_s=PANEL_FLUX[request.param]))


@pytest.mark.parametrize("curve", list(CURVES))
@pytest.mark.parametrize("filter_name", ["L", "R", "G", "B", "Ha", "OIII", "SII"])
def test_untrained_search_converges_within_8_test_frames(model: SimModel, curve: str, filter_name: str) -> None:
    target = FlatTarget()
    take = panel_camera(model, CURVES[curve], filter_name)
    result = PanelSearch(target, (0, 255)).search(take)
    assert len(result.test_frames) <= 8
    # the flats taken with the found settings land within target ± tolerance
    levels = [take(result.settings.brightness, result.settings.exposure) for _ in range(3)]
    assert all(target.within(level) for level in levels), (levels, result.test_frames)
    assert ExposureLimits().allowed_min <= result.settings.exposure <= ExposureLimits().allowed_max


def test_exposure_stays_fixed_when_brightness_can_reach_the_target() -> None:
    """A shared exposure across filters means one set of dark flats."""
    model = SimModel("small", seed=5, width=96, height=64, optics=Optics(panel_flux_e_s=300_000.0))
    exposures = set()
    for f in ("L", "R", "G", "B"):
        result = PanelSearch(FlatTarget(), (0, 255)).search(panel_camera(model, CURVES["gamma 2.2"], f))
        exposures.add(result.settings.exposure)
    assert exposures == {ExposureLimits().start}


def test_panel_without_intensity_control_searches_exposure() -> None:
    model = SimModel("small", seed=5, width=96, height=64)
    take = panel_camera(model, CURVES["linear"], "G")
    result = PanelSearch(FlatTarget(), None).search(take)
    assert result.settings.brightness is None
    assert len(result.test_frames) <= 4
    assert FlatTarget().within(take(None, result.settings.exposure))


def test_coarse_brightness_steps_are_finished_with_the_exposure() -> None:
    model = SimModel("small", seed=5, width=96, height=64)
    take = panel_camera(model, CURVES["linear"], "L", max_setting=4)
    target = FlatTarget(tolerance=0.02)
    result = PanelSearch(target, (0, 4)).search(take)
    assert len(result.test_frames) <= 8
    assert target.within(take(result.settings.brightness, result.settings.exposure))


def test_camera_that_ignores_the_panel_is_reported_not_looped() -> None:
    """The stock CCD simulator's flats are a constant ~65000 whatever the panel does."""
    calls: list[tuple[float | None, float]] = []

    def constant(brightness: float | None, exposure: float) -> float:
        calls.append((brightness, exposure))
        return 65000.0

    with pytest.raises(PanelIgnored, match="ignores the panel"):
        PanelSearch(FlatTarget(), (0, 255)).search(constant)
    assert len(calls) <= 10


def test_clipped_whatever_the_light_is_reported_as_ignored_or_far_too_bright() -> None:
    """The stock CCD simulator binned gives 65535 everywhere: indistinguishable from a blinding panel."""
    with pytest.raises(PanelIgnored, match="far too bright"):
        PanelSearch(FlatTarget(), (0, 255)).search(lambda b, t: 65535.0)


def test_constant_mid_level_camera_is_reported_at_once() -> None:
    with pytest.raises(PanelIgnored, match="ignores the panel"):
        PanelSearch(FlatTarget(), (0, 255)).search(lambda b, t: 12000.0)


def test_too_bright_and_too_dim_panels_say_what_to_change() -> None:
    bright = SimModel("small", seed=5, width=96, height=64, optics=Optics(panel_flux_e_s=2.5e7))
    with pytest.raises(PanelTooBright, match="dim the panel"):
        PanelSearch(FlatTarget(), (0, 255)).search(panel_camera(bright, CURVES["linear"], "L"))
    dim = SimModel("small", seed=5, width=96, height=64, optics=Optics(panel_flux_e_s=50.0))
    with pytest.raises(PanelTooDim, match="brighten the panel"):
        PanelSearch(FlatTarget(), (0, 255)).search(panel_camera(dim, CURVES["linear"], "Ha"))


def test_second_run_uses_the_trained_table_without_search(tmp_path: Path) -> None:
    model = SimModel("small", seed=5, width=96, height=64)
    calls = 0
    base = panel_camera(model, CURVES["gamma 2.2"], "L")

    def take(b: float | None, t: float) -> float:
        nonlocal calls
        calls += 1
        return base(b, t)

    table = TrainedPanelTable.in_data_dir(tmp_path)
    first, used, _ = panel_settings("cam|L|0|1|-", table, PanelSearch(FlatTarget(), (0, 255)), take)
    assert used == calls > 0
    # a fresh process reads the same file
    again, used_again, _ = panel_settings(
        "cam|L|0|1|-", TrainedPanelTable.in_data_dir(tmp_path), PanelSearch(FlatTarget(), (0, 255)), take
    )
    assert used_again == 0 and calls == used
    assert again == first
    assert not list((tmp_path / "flats").glob("*.part"))


def test_corrupt_trained_table_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "flats" / "panel_flats.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(FlatStoreError, match="delete the file"):
        TrainedPanelTable(path)


def test_frame_level_is_the_median() -> None:
    data = np.full((64, 64), 1000, dtype=np.uint16)
    data[:4, :4] = 65535  # a few hot pixels do not move it
    assert frame_level(data) == 1000.0
