"""Sky flats on the simulator model with simulated time (no INDI): dusk and dawn, 52° N, December and June.

Night 1 starts with nothing learned; night 2 predicts its counts from what night 1 learned and must
land within 20 % of that prediction, with a short passing cloud and stars in the late frames.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from agent.flats.sky import SkyFlatRun, SkyRunReport, SkyShot, SunTrack, find_window
from agent.flats.target import FlatTarget
from agent.flats.twilight import TwilightModel, TwilightStore, exposure_for, filter_order
from indi_sim.model import SimModel
from tests.flats_fixtures import Cloud, SimSky, SimulatedClock

LAT, LON = 52.0, 13.4
FILTERS = ["L", "R", "G", "B", "Ha", "OIII", "SII"]
NEEDS = dict.fromkeys(FILTERS, 50)
TARGET = FlatTarget()


def night(model: SimModel, twilight: TwilightModel, date: str, period: str, index: int,
          clouds: tuple[tuple[float, float, float], ...] = (), needs: dict[str, int] = NEEDS,
          late_start_min: float = 0.0) -> tuple[SkyRunReport, SimSky]:
    day = dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC) + dt.timedelta(days=index)
    around = day.replace(hour=12) if period == "dusk" else day
    clock = SimulatedClock(around)
    sky = SimSky(model, clock, LAT, LON, field_base=1000 * index)
    window = find_window(sky.sun, around, 14, period, -2.0, -10.0)
    assert window is not None
    sky.clouds = [Cloud(window[0] + dt.timedelta(minutes=a), window[0] + dt.timedelta(minutes=b), c)
                  for a, b, c in clouds]
    clock.t = window[0] + dt.timedelta(minutes=late_start_min - 2)
    run = SkyFlatRun(sky, clock, SunTrack(LAT, LON, *window), period, window, TARGET, 0.1, 30.0, twilight,
                     pedestal=sky.pedestal())
    return run.run(needs), sky


@pytest.mark.parametrize("period", ["dusk", "dawn"])
@pytest.mark.parametrize("date", ["2026-12-01", "2026-06-20"])
def test_sky_flats_learn_the_twilight_and_meet_the_prediction(sky_model: SimModel, date: str, period: str) -> None:
    twilight = TwilightModel("sim")
    first, _ = night(sky_model, twilight, date, period, 0)
    assert sum(first.counts.values()) > 0
    assert all(v == 0 for v in first.predicted.values())  # nothing learned yet: no prediction
    second, sky = night(sky_model, twilight, date, period, 1, clouds=((25.0, 26.5, 0.4),))

    for report, truth in ((first, None), (second, sky)):
        kept = report.accepted()
        assert kept, report.stopped
        assert all(TARGET.within(r.level) and not TARGET.saturated(r.level) for r in kept)
        assert not any(TARGET.saturated(r.level) for r in kept)
        if truth is None:
            continue
        # exposure prediction: at least 90 % of the flats exposed under a clear sky land within tolerance
        clear = [r for r, f in zip(report.records, truth.frames, strict=True) if f["cloud"] == 0.0]
        within = [r for r in clear if TARGET.within(r.level)]
        assert len(within) >= 0.9 * len(clear), [r.reason for r in clear if not TARGET.within(r.level)]
        # every frame under the cloud is rejected, and says why
        clouded = [r for r, f in zip(report.records, truth.frames, strict=True) if f["cloud"] != 0.0]
        assert clouded and all(not r.accepted and "cloud" in (r.reason or "") for r in clouded)

    # counts per filter within 20 % of what the learned model predicted (± 1 frame for small numbers)
    for f in FILTERS:
        predicted, got = second.predicted[f], second.counts[f]
        assert abs(got - predicted) <= max(1, 0.2 * predicted), (f, predicted, got, second.stopped)


def test_frames_with_stars_are_rejected_with_a_reason(sky_model: SimModel) -> None:
    """A dense star field late at dusk: the flats that show stars are thrown out, saying so."""
    dense = SimModel("small", seed=21, width=96, height=64,
                     optics=sky_model.optics.__class__(star_density_per_deg2=20000.0))
    report, _ = night(dense, TwilightModel("sim"), "2026-12-01", "dusk", 0, needs={"L": 12, "R": 12},
                      late_start_min=40.0)
    reasons = [r.reason or "" for r in report.rejected()]
    assert any(reason.startswith("stars:") for reason in reasons)
    assert all(TARGET.within(r.level) for r in report.accepted())


def test_exposures_grow_at_dusk_and_shrink_at_dawn() -> None:
    assert exposure_for(1000.0, -1e-3, 30000.0) > 30.0  # a fading sky needs longer than rate alone says
    assert exposure_for(1000.0, +1e-3, 30000.0) < 30.0
    assert exposure_for(10.0, -1e-2, 30000.0) == float("inf")  # fading faster than it can collect
    share = {"L": 1.0, "R": 0.3, "Ha": 0.03}.__getitem__
    assert filter_order(["L", "R", "Ha"], "dusk", share) == ["Ha", "R", "L"]
    assert filter_order(["L", "R", "Ha"], "dawn", share) == ["L", "R", "Ha"]


def test_learned_twilight_is_kept_between_runs(tmp_path: Path) -> None:
    store = TwilightStore.in_data_dir(tmp_path)
    model = store.model("cam|0|1|-")
    for alt in (-3.0, -5.0, -7.0, -9.0):
        model.add("L", alt, 10 ** (3.0 + 0.22 * (alt + 6)))
    model.overheads.append(3.0)
    store.save(model)
    again = TwilightStore.in_data_dir(tmp_path).model("cam|0|1|-")
    rate = again.rate("L", -6.0)
    assert rate is not None and abs(rate - 1000.0) < 1.0
    assert abs(again.slope(-6.0) - 0.22) < 1e-3
    assert again.overhead == 3.0


def test_a_closed_cap_at_dusk_stops_the_filter_with_a_reason(sky_model: SimModel) -> None:
    clock = SimulatedClock(dt.datetime(2026, 12, 1, 15, 10, tzinfo=dt.UTC))

    class CappedCamera:
        def expose(self, filter_name: str, exposure: float) -> SkyShot:
            start = clock.now()
            clock.sleep(exposure + 2.0)
            return SkyShot(sky_model.render("flat", exposure, cap_closed=True), start, exposure)

    window = (clock.now(), clock.now() + dt.timedelta(minutes=50))
    run = SkyFlatRun(CappedCamera(), clock, SunTrack(LAT, LON, *window), "dusk", window, TARGET, 0.1, 30.0,
                     TwilightModel("sim"))
    report = run.run({"L": 5})
    assert report.counts == {"L": 0}
    assert "no sky light" in report.stopped["L"]
    assert len(report.records) <= 4
