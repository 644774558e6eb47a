"""What the library needs, as rows, with the recent lights that need each missing master.

With tens of thousands of frames there are thousands of needs; a person looks at the first
hundred. So a `NeedsView` keeps each need as its JSON text (about half a kilobyte) and finds the
lights of a missing or expired master only when that need is shown. The JSON API streams the
same texts without building a dict per need.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from math import nan as NAN
from typing import Any

from agent.library.keys import KEY_COLUMNS, ConfigKey, FrameType, LibraryPolicy
from agent.library.needs import Need, needs
from agent.library.queries.lights import Places
from agent.library.queries.masters import DAY
from agent.library.queries.rows import JsonRows, to_json
from agent.library.store import Library

WITH_LIGHTS = ("missing", "expired")
"""The needs that list the lights waiting for them."""
MOST_PLACES = 20
"""Lights of one need, listed by (night, target, filter): the newest this many."""
SLACK = 1e-6
"""Widening of a temperature window before the exact test (floating-point rounding)."""


def needs_table(lib: Library, policy: LibraryPolicy, light_days: float = 30.0) -> list[dict[str, Any]]:
    """`needs()` as plain rows; uncovered configurations list the lights that need them."""
    view = needs_view(lib, policy, light_days)
    return list(view.dicts(range(len(view))))


def needs_view(lib: Library, policy: LibraryPolicy, light_days: float = 30.0) -> NeedsView:
    items = needs(lib, policy, light_days=light_days)
    return NeedsView(items, RecentLights(lib, time.time() - light_days * DAY, policy))


class NeedsView:
    """Needs, most urgent first, as JSON texts in one string; their lights looked up when shown.

    Kept in a few large buffers rather than thousands of small objects, so that once the work
    of building it is freed, the memory it used can go back to the system."""

    def __init__(self, items: Iterable[Need], recent: RecentLights) -> None:
        self.recent = recent
        self.kinds: dict[str, int] = {}  # how many of each, in order of urgency
        self.kind_names: list[str] = []
        self.kind = array("B")
        self.query = array("i")  # its query for the lights that need it, or -1
        self.queries = QueryColumns()
        self.rows = JsonRows()
        for n in items:
            row = n.as_dict()
            row["percent"] = min(100, round(100 * n.have / n.target)) if n.target else 100
            self.rows.append(row)
            if n.kind not in self.kinds:
                self.kinds[n.kind] = 0
                self.kind_names.append(n.kind)
            self.kinds[n.kind] += 1
            self.kind.append(self.kind_names.index(n.kind))
            if n.kind in WITH_LIGHTS:
                self.query.append(self.queries.add(recent.query(n.key)))
            else:
                self.query.append(-1)
        self.rows.seal()
        self._with_lights: JsonRows | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def lights_text(self, i: int) -> str:
        """The lights that need need `i`, as JSON text (an empty list for other kinds)."""
        q = self.query[i]
        return "[]" if q < 0 else to_json(self.recent.needing(self.queries.get(q)))

    def text(self, i: int) -> str:
        """Need `i` with its lights, as the JSON text of its row."""
        return self.rows.text_of(i)[:-1] + ',"lights":' + self.lights_text(i) + "}"

    def texts(self, positions: Iterable[int] | None = None) -> Iterator[str]:
        """The JSON texts of these needs (all when None), with their lights. The first call works
        out the lights of every need once and keeps the texts, compressed, for the next."""
        full = self._with_lights
        if full is None:
            full = JsonRows()
            for i in range(len(self)):
                full.append_text(self.text(i))
            self._with_lights = full = full.seal()
        return (full.text_of(i) for i in (range(len(self)) if positions is None else positions))

    def dicts(self, positions: Iterable[int]) -> Iterator[dict[str, Any]]:
        for i in positions:
            row = self.rows.row(i)
            q = self.query[i]
            row["lights"] = [] if q < 0 else self.recent.needing(self.queries.get(q))
            yield row

    def of_kinds(self, kinds: Iterable[str]) -> list[int]:
        wanted = {self.kind_names.index(k) for k in kinds if k in self.kinds}
        return [i for i, kind in enumerate(self.kind) if kind in wanted]


_LIGHT_FIELDS = ("camera", "sensor_kind", "width", "height", "binning", "gain", "offset", "readout_mode", "bit_depth")


@dataclass(frozen=True)
class LightsQuery:
    """Which recent lights need a master of this key: same sensor settings, the master's filter
    when it is a flat, its temperature within the tolerance, its exposure unless it scales."""

    base: tuple[object, ...]
    flat_filter: str | None
    temperature: float | None
    exposure: float | None


class QueryColumns:
    """Many `LightsQuery`s in columns (their sensor settings shared): a few buffers, not thousands
    of small objects."""

    def __init__(self) -> None:
        self.bases: list[tuple[object, ...]] = []
        self.base_codes: dict[tuple[object, ...], int] = {}
        self.filters: list[str] = []
        self.base = array("I")
        self.flat_filter = array("i")  # into `filters`, or -1 when the master is no flat
        self.temperature = array("d")  # NaN: none asked for
        self.exposure = array("d")  # NaN: any exposure

    def __len__(self) -> int:
        return len(self.base)

    def add(self, query: LightsQuery) -> int:
        base = self.base_codes.setdefault(query.base, len(self.bases))
        if base == len(self.bases):
            self.bases.append(query.base)
        self.base.append(base)
        if query.flat_filter is None:
            self.flat_filter.append(-1)
        else:
            if query.flat_filter not in self.filters:
                self.filters.append(query.flat_filter)
            self.flat_filter.append(self.filters.index(query.flat_filter))
        self.temperature.append(NAN if query.temperature is None else query.temperature)
        self.exposure.append(NAN if query.exposure is None else query.exposure)
        return len(self.base) - 1

    def get(self, j: int) -> LightsQuery:
        f, t, e = self.flat_filter[j], self.temperature[j], self.exposure[j]
        return LightsQuery(
            base=self.bases[self.base[j]],
            flat_filter=None if f < 0 else self.filters[f],
            temperature=None if t != t else t,
            exposure=None if e != e else e,
        )


class _Lights:
    """Recent lights in columns: filter and place as codes, exposure NaN when not recorded."""

    def __init__(self) -> None:
        self.filter = array("I")
        self.exposure = array("d")
        self.place = array("I")

    def add(self, filt: int, exposure: float | None, place: int) -> None:
        self.filter.append(filt)
        self.exposure.append(NAN if exposure is None else float(exposure))
        self.place.append(place)


class _Bucket:
    """The recent lights of one sensor configuration, by temperature (those without one apart)."""

    def __init__(self, timed: list[tuple[float, int, float | None, int]], untimed: list[tuple[int, float | None, int]]):
        timed.sort(key=lambda t: t[0])
        self.temperatures = array("d", (t[0] for t in timed))
        self.lights = _Lights()
        for _, filt, exposure, place in timed:
            self.lights.add(filt, exposure, place)
        self.untimed = _Lights()
        for filt, exposure, place in untimed:
            self.untimed.add(filt, exposure, place)


class RecentLights:
    """Lights of the last days, read once and bucketed by the key fields every master shares and
    sorted by temperature, so each need looks only at the lights within its tolerance."""

    def __init__(self, lib: Library, since: float, policy: LibraryPolicy) -> None:
        self.tolerance = policy.temperature_tolerance + 1e-9
        places = Places(lib.stored(lib.frames_dir))
        self.places: list[tuple[str, str]] = []
        self.filters: list[str] = []
        place_codes: dict[tuple[str, str], int] = {}
        filter_codes: dict[str, int] = {}
        timed: dict[tuple[object, ...], list[tuple[float, int, float | None, int]]] = {}
        untimed: dict[tuple[object, ...], list[tuple[int, float | None, int]]] = {}
        for r in lib.conn.execute(
            f"SELECT path, filter, exposure, temperature, captured_at, {', '.join(_LIGHT_FIELDS)} FROM frames "
            "WHERE frame_type = 'light' AND captured_at >= ?",
            (since,),
        ):
            base = tuple(r[c] for c in _LIGHT_FIELDS)
            where = places(str(r["path"]), r["captured_at"])
            place = place_codes.get(where)
            if place is None:
                place = place_codes[where] = len(self.places)
                self.places.append(where)
            name = str(r["filter"] or "-")
            filt = filter_codes.get(name)
            if filt is None:
                filt = filter_codes[name] = len(self.filters)
                self.filters.append(name)
            if r["temperature"] is None:
                untimed.setdefault(base, []).append((filt, r["exposure"], place))
            else:
                timed.setdefault(base, []).append((float(r["temperature"]), filt, r["exposure"], place))
        self.buckets = {base: _Bucket(timed.get(base, []), untimed.get(base, [])) for base in timed.keys() | untimed.keys()}

    @staticmethod
    def query(wanted: ConfigKey) -> LightsQuery:
        values = dict(zip(KEY_COLUMNS, wanted.exact(), strict=True))
        exact_exposure = wanted.exposure_key is not None and not (
            wanted.frame_type is FrameType.DARK and wanted.sensor_kind.value == "ccd"
        )
        return LightsQuery(
            base=tuple(values[c] for c in _LIGHT_FIELDS),
            flat_filter=(wanted.filter or "-") if wanted.frame_type is FrameType.FLAT else None,
            temperature=wanted.temperature,
            exposure=float(wanted.exposure_key or 0) if exact_exposure else None,
        )

    def needing(self, query: LightsQuery) -> list[dict[str, Any]]:
        """(night, target, filter) and how many lights, newest night first, at most MOST_PLACES."""
        bucket = self.buckets.get(query.base)
        if bucket is None:
            return []
        counts: Counter[tuple[int, int]] = Counter()
        flat_filter = -1
        if query.flat_filter is not None:
            if query.flat_filter not in self.filters:
                return []
            flat_filter = self.filters.index(query.flat_filter)
        if query.temperature is None:
            self._count(counts, bucket.lights, range(len(bucket.lights.place)), flat_filter, query.exposure)
            self._count(counts, bucket.untimed, range(len(bucket.untimed.place)), flat_filter, query.exposure)
        else:
            t = query.temperature
            lo = bisect_left(bucket.temperatures, t - self.tolerance - SLACK)
            hi = bisect_right(bucket.temperatures, t + self.tolerance + SLACK)
            within = [i for i in range(lo, hi) if abs(bucket.temperatures[i] - t) <= self.tolerance]
            self._count(counts, bucket.lights, within, flat_filter, query.exposure)
        named = [((*self.places[place], self.filters[filt]), n) for (place, filt), n in counts.items()]
        return [
            {"night": k[0], "target": k[1], "filter": k[2], "count": n}
            for k, n in sorted(named, reverse=True)[:MOST_PLACES]
        ]

    @staticmethod
    def _count(
        counts: Counter[tuple[int, int]], lights: _Lights, positions: Iterable[int], flat_filter: int,
        exposure: float | None,
    ) -> None:  # fmt: skip
        for i in positions:
            filt = lights.filter[i]
            if flat_filter >= 0 and filt != flat_filter:
                continue
            if exposure is not None:
                e = lights.exposure[i]
                if e != e or abs(e - exposure) >= 0.5:  # NaN: exposure not recorded
                    continue
            counts[(lights.place[i], filt)] += 1
