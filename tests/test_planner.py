"""Night planner: Sun events and sky-flat windows against astropy, high latitudes, schedule and gaps."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from agent.planner import LightConfig, plan_night
from tests.planner_fixtures import SITES, make_sequence, reference_crossings, sun_altitude

TOLERANCE_S = 60.0
EVENTS = {  # level: (dusk event, dawn event)
    -0.833: ("sunset", "sunrise"),
    -6.0: ("civil_dusk", "civil_dawn"),
    -12.0: ("nautical_dusk", "nautical_dawn"),
    -18.0: ("astronomical_dusk", "astronomical_dawn"),
}
DATES = {"december": dt.date(2026, 12, 15), "june": dt.date(2026, 6, 15)}


@pytest.mark.parametrize("month", DATES)
@pytest.mark.parametrize("site_key", SITES)
def test_twilights_and_sky_flat_windows_agree_with_astropy(site_key: str, month: str) -> None:
    site = SITES[site_key]
    plan = plan_night(make_sequence(site), DATES[month])
    levels = [*EVENTS, -2.0, -10.0]
    ref, lowest = reference_crossings(site, plan.start, plan.end, levels)

    def dusk_of(level: float) -> float | None:
        found = [t for t in ref[level][0] if t < lowest]
        return found[-1] if found else None

    def dawn_of(level: float) -> float | None:
        found = [t for t in ref[level][1] if t > lowest]
        return found[0] if found else None

    checked = 0
    for level, (dusk_name, dawn_name) in EVENTS.items():
        for name, expected in ((dusk_name, dusk_of(level)), (dawn_name, dawn_of(level))):
            event = plan.events[name]
            if expected is None:
                assert event.time is None, f"{name}: planner has {event.time}, astropy has no crossing"
                assert event.reason, f"{name}: missing reason"
            else:
                assert event.time is not None, f"{name}: planner says {event.reason!r}"
                assert abs(event.time.timestamp() - expected) < TOLERANCE_S, name
                checked += 1

    # Sky-flat windows: the Sun between -2 and -10 degrees, separately at dusk and at dawn.
    alt_start, alt_end = sun_altitude(
        site["latitude"],
        site["longitude"],
        site["elevation"],
        np.array([plan.start.timestamp(), plan.end.timestamp()]),
    )
    dusk, dawn = plan.dusk_flat_window, plan.dawn_flat_window
    dusk_start = dusk_of(-2.0) or (plan.start.timestamp() if -10 <= alt_start <= -2 else None)
    dawn_end = dawn_of(-2.0) or (plan.end.timestamp() if -10 <= alt_end <= -2 else None)
    if dusk_start is None:
        assert dusk.start is None and dusk.reason
    else:
        assert dusk.start is not None and dusk.end is not None
        assert abs(dusk.start.timestamp() - dusk_start) < TOLERANCE_S
        assert abs(dusk.end.timestamp() - (dusk_of(-10.0) or lowest)) < TOLERANCE_S
        checked += 2
    if dawn_end is None:
        assert dawn.start is None and dawn.reason
    else:
        assert dawn.start is not None and dawn.end is not None
        assert abs(dawn.end.timestamp() - dawn_end) < TOLERANCE_S
        assert abs(dawn.start.timestamp() - (dawn_of(-10.0) or lowest)) < TOLERANCE_S
        checked += 2
    if (site_key, month) != ("69N", "june"):  # midnight Sun: nothing to check, by design
        assert checked >= 4


def test_midnight_sun_is_said_plainly() -> None:
    plan = plan_night(make_sequence(SITES["69N"], [_target("M31", 0.7122 * 15, 41.27)]), DATES["june"])
    assert plan.sunset is None and plan.sunrise is None
    assert "stays above" in (plan.events["sunset"].reason or "")
    assert any(note.startswith("Midnight Sun") for note in plan.notes)
    assert plan.dark is None and plan.blocks == [] and plan.gaps == []
    assert plan.visibility[0].reason and "no lights tonight" in plan.visibility[0].reason
    assert plan.shortfalls and plan.shortfalls[0].missing == plan.shortfalls[0].requested


def test_polar_night_is_one_long_night() -> None:
    plan = plan_night(make_sequence(SITES["69N"]), DATES["december"])
    assert plan.sunset is None and "stays below" in (plan.events["sunset"].reason or "")
    assert any(note.startswith("Polar night") for note in plan.notes)
    assert plan.civil_dusk is not None and plan.astronomical_dusk is not None
    assert plan.dark is not None and plan.dark.duration > dt.timedelta(hours=13)


def test_no_astronomical_night_at_52n_in_june() -> None:
    plan = plan_night(make_sequence(SITES["52N"], [_target("M13", 250.42, 36.46)]), DATES["june"])
    assert plan.astronomical_dusk is None and plan.nautical_dusk is not None
    assert any("No astronomical night" in note for note in plan.notes)
    assert plan.blocks == [] and any("schedule.max_sun_altitude" in note for note in plan.notes)
    # Allowing nautical darkness brings the lights back.
    nautical = make_sequence(
        SITES["52N"], [_target("M13", 250.42, 36.46)], schedule={"max_sun_altitude": -12}
    )
    assert plan_night(nautical, DATES["june"]).blocks


def _target(name: str, ra: float, dec: float, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "ra": ra,
        "dec": dec,
        "exposures": [{"filter": "L", "exposure": 300, "count": 6}],
        **extra,
    }


def _ra_rising_at(site: dict[str, object], local_time: dt.datetime, dec: float, altitude: float) -> float:
    """RA (deg) of a star at `dec` that climbs through `altitude` at `local_time`."""
    import astropy.units as u
    from astropy.time import Time

    lat = np.radians(float(site["latitude"]))  # type: ignore[arg-type]
    d = np.radians(dec)
    cos_h = (np.sin(np.radians(altitude)) - np.sin(lat) * np.sin(d)) / (np.cos(lat) * np.cos(d))
    hour_angle = np.degrees(np.arccos(cos_h))  # east of the meridian, i.e. rising
    lst = Time(local_time).sidereal_time("mean", longitude=float(site["longitude"]) * u.deg).deg  # type: ignore[arg-type]
    return float((lst + hour_angle) % 360.0)


def test_gap_before_a_late_rising_target_is_labelled_for_darks() -> None:
    site = SITES["52N"]
    date = DATES["december"]
    rises = dt.datetime.combine(date, dt.time(23, 0), tzinfo=site_zone(site))
    ra = _ra_rising_at(site, rises, dec=10.0, altitude=30.0)
    seq = make_sequence(site, [_target("Late riser", ra, 10.0, min_altitude=30)])
    plan = plan_night(seq, date)

    visible = plan.visibility[0].intervals
    assert visible and abs((visible[0].start - rises).total_seconds()) < 3 * 60
    first = plan.blocks[0]
    assert first.start >= visible[0].start
    before = [gap for gap in plan.gaps if gap.end <= first.start]
    assert before, "expected a gap before the late target"
    gap = before[-1]
    assert abs((gap.end - first.start).total_seconds()) < 1
    assert plan.dusk_flat_window.end is not None and gap.start == plan.dusk_flat_window.end
    assert "darks: 300s gain 100 offset 50 bin1 -10C" in gap.items
    assert any(item.startswith("bias:") for item in gap.items)
    assert any(item.startswith("dark flats:") for item in gap.items)


def site_zone(site: dict[str, object]) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(str(site["timezone"]))


def test_higher_priority_goes_first_and_shortfalls_are_reported() -> None:
    m42 = {"name": "M42", "exposures": [{"filter": "Ha", "exposure": 300, "count": 200}]}
    m1 = {"name": "M1", "priority": 1, "exposures": [{"filter": "Ha", "exposure": 300, "count": 10}]}
    m42["priority"] = 2
    plan = plan_night(make_sequence(SITES["52N"], [m42, m1]), DATES["december"])
    first = plan.blocks[0]
    assert first.target == "M1" and first.count == 10
    assert first.setup == 120.0 and first.end - first.start == dt.timedelta(seconds=120 + 10 * 305)
    m42_blocks = [b for b in plan.blocks if b.target == "M42"]
    assert m42_blocks and m42_blocks[0].start >= first.end
    shortfall = next(s for s in plan.shortfalls if s.target == "M42")
    assert shortfall.missing == 200 - sum(b.count for b in m42_blocks)
    # Blocks never overlap and stay inside darkness.
    assert plan.dark is not None
    for a, b in zip(plan.blocks, plan.blocks[1:], strict=False):
        assert a.end <= b.start
    assert all(plan.dark.start <= b.start and b.end <= plan.dark.end for b in plan.blocks)


def test_time_window_spanning_midnight_is_respected() -> None:
    target = {
        "name": "M1",
        "window": {"start": "23:30", "end": "01:00"},
        "exposures": [{"filter": "L", "exposure": 60, "count": 500}],
    }
    plan = plan_night(make_sequence(SITES["52N"], [target]), DATES["december"])
    assert plan.blocks
    for block in plan.blocks:
        start, end = plan.local(block.start), plan.local(block.end)
        assert start.time() >= dt.time(23, 30) or start.time() < dt.time(1, 0)
        assert end <= dt.datetime.combine(
            DATES["december"] + dt.timedelta(days=1), dt.time(1, 1), tzinfo=end.tzinfo
        )


def test_target_next_to_the_moon_is_not_observable() -> None:
    import astropy.units as u
    from astropy.coordinates import EarthLocation, get_body
    from astropy.time import Time

    site = SITES["32N"]
    date = dt.date(2026, 12, 24)  # Moon well up in the evening
    evening = Time(dt.datetime.combine(date, dt.time(20, 0), tzinfo=site_zone(site)))
    location = EarthLocation.from_geodetic(site["longitude"] * u.deg, site["latitude"] * u.deg)
    moon = get_body("moon", evening, location).icrs
    near = _target(
        "Near the Moon", float(moon.ra.deg), float(moon.dec.deg), min_altitude=10, min_moon_separation=30
    )
    plan = plan_night(make_sequence(site, [near]), date)
    assert plan.visibility[0].intervals == () or all(
        abs((i.start - evening.to_datetime(timezone=dt.UTC)).total_seconds()) > 3600
        for i in plan.visibility[0].intervals
    )
    without = plan_night(make_sequence(site, [{**near, "min_moon_separation": None}]), date)
    assert without.visibility[0].intervals


def test_needs_callable_labels_the_gaps() -> None:
    calls: list[tuple[list[LightConfig], dt.datetime, dt.datetime]] = []

    def needs(lights, start, end):  # type: ignore[no-untyped-def]
        calls.append((list(lights), start, end))
        return [f"darks: {len(lights)} configurations"]

    seq = make_sequence(SITES["52N"], [_target("M81", 148.89, 69.07)])
    plan = plan_night(seq, DATES["december"], needs=needs)
    assert plan.gaps and len(calls) == len(plan.gaps)
    assert all(gap.label == "darks: 1 configurations" for gap in plan.gaps)
    assert calls[0][0][0].exposure == 300 and calls[0][0][0].filter == "L"


def test_darks_in_gaps_off_leaves_gaps_idle() -> None:
    seq = make_sequence(
        SITES["52N"], [], calibration={"flats": {"source": "sky-dusk"}, "darks": {"in_gaps": False}}
    )
    plan = plan_night(seq, DATES["december"])
    assert plan.gaps and all(gap.label == "idle" and gap.items == () for gap in plan.gaps)


def test_plan_serialises_to_json_with_utc_and_local_times() -> None:
    plan = plan_night(make_sequence(SITES["35S"], [_target("M42", 83.82, -5.39)]), DATES["december"])
    data = json.loads(json.dumps(plan.to_dict()))
    sunset = data["events"]["sunset"]["time"]
    assert sunset["utc"].endswith("+00:00") and sunset["local"].endswith("+11:00")
    assert data["blocks"] and data["sky_flat_windows"][0]["period"] == "dusk"


def test_cached_earth_orientation_table_equals_astropys(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from astropy.time import Time
    from astropy.utils import iers

    from agent.sky import iers as planner_iers

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(planner_iers, "_loaded", None)
    first = planner_iers.earth_orientation_table()  # builds the cache
    assert planner_iers._cache_file().exists()
    monkeypatch.setattr(planner_iers, "_loaded", None)
    cached = planner_iers.earth_orientation_table()  # reads it back
    reference = iers.IERS_Auto.open()
    times = Time(["2020-01-01", "2026-12-21", "2027-06-01"])
    for table in (first, cached):
        assert np.allclose(table.ut1_utc(times).value, reference.ut1_utc(times).value, atol=0, rtol=0)
        for got, want in zip(table.pm_xy(times), reference.pm_xy(times), strict=True):
            assert np.array_equal(got.value, want.value)


def test_nights_planned_on_several_threads_at_once_are_the_night_planned_alone(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The dashboard, the service and a test's pool may plan at once: the cached table is read
    once (numpy's header parsing is not thread-safe) and no thread sees another's settings undone."""
    from concurrent.futures import ThreadPoolExecutor

    from agent.sky import iers as planner_iers

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(planner_iers, "_loaded", None)
    seq = make_sequence(SITES["52N"], [{"name": "M42", "exposures": [{"filter": "L", "exposure": 60, "count": 20}]}])
    date = dt.date(2026, 12, 21)
    alone = plan_night(seq, date).to_dict()
    monkeypatch.setattr(planner_iers, "_loaded", None)  # each thread finds the cache unread
    with ThreadPoolExecutor(max_workers=6) as pool:
        plans = list(pool.map(lambda _: plan_night(seq, date).to_dict(), range(6)))
    assert all(plan == alone for plan in plans)
