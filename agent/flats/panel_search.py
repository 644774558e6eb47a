"""Panel flat exposure control: find the brightness (or exposure) that gives the target level.

The search is a pure function of a `take(brightness, exposure) -> level` callable, so it is tested
on the simulator model without INDI and driven by the camera in a real run. It never loops: every
path ends within `max_test_frames` with either settings or an error that says what the rig does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from agent.flats.target import FlatError, FlatTarget, PanelIgnored, PanelSettings, PanelTooBright, PanelTooDim
from agent.flats.trained import TrainedPanelTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestFrame:
    """One frame taken to find the settings, and what it showed."""

    brightness: float | None
    exposure: float
    level: float
    saturated: bool


@dataclass
class SearchResult:
    settings: PanelSettings
    test_frames: list[TestFrame]
    note: str = ""


@dataclass(frozen=True)
class ExposureLimits:
    """Panel exposures: `preferred` avoids flicker and long waits; `allowed` is the hard range."""

    preferred_min: float = 0.5
    preferred_max: float = 10.0
    allowed_min: float = 0.1
    allowed_max: float = 30.0
    start: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.allowed_min <= self.preferred_min < self.preferred_max <= self.allowed_max:
            raise FlatError(
                "exposure limits must satisfy 0 < allowed_min ≤ preferred_min < preferred_max ≤ allowed_max; "
                "fix exposure_min/exposure_max"
            )


class _Exhausted(Exception):
    """Neither brightness nor exposure can move further in the needed direction."""

    def __init__(self, too_bright: bool) -> None:
        super().__init__()
        self.too_bright = too_bright


class _Found(Exception):
    def __init__(self, settings: PanelSettings) -> None:
        super().__init__()
        self.settings = settings


@dataclass
class _Side:
    brightness: float
    level: float
    saturated: bool
    kept: int = 0  # how many times this end stayed while the other moved (Illinois weighting)


class PanelSearch:
    """Find brightness (or exposure) that gives the target level with as few test frames as possible.

    Exposure stays fixed inside the preferred range (so every filter can share one dark-flat exposure)
    while the brightness is bracketed: one-sided steps assume level ∝ light, two-sided steps interpolate
    between the bracket ends (Illinois-weighted regula falsi, bisection when an end is saturated or dark).
    Exposure moves only when brightness is exhausted, or to trim the last step of a coarse brightness
    scale; it is exact because the sensor is linear in exposure.
    """

    def __init__(
        self,
        target: FlatTarget,
        brightness_range: tuple[float, float] | None,
        limits: ExposureLimits | None = None,
        pedestal: float = 0.0,
        brightness_step: float = 1.0,
        max_test_frames: int = 16,
        search_share: float = 0.5,
        trim_after: int = 6,
    ) -> None:
        self.trim_after = trim_after
        self.target = target
        self.limits = limits or ExposureLimits()
        self.pedestal = pedestal
        self.step = brightness_step
        self.max_test_frames = max_test_frames
        self.share = search_share
        if brightness_range is not None:
            low, high = brightness_range
            low = max(low, brightness_step)  # 0 is "off" on most panels
            brightness_range = None if high <= low else (low, high)
        self.range = brightness_range
        self._frames: list[TestFrame] = []

    # -- helpers
    def _signal(self, level: float) -> float:
        return level - self.pedestal

    def _ratio(self, level: float) -> float | None:
        """Light factor that would bring `level` to the target, assuming level ∝ light; None if unknown."""
        signal = self._signal(level)
        if self.target.saturated(level) or signal <= 0.01 * self._signal(self.target.level):
            return None
        return self._signal(self.target.level) / signal

    def _round(self, b: float) -> float:
        assert self.range is not None
        b = round(b / self.step) * self.step
        return min(max(b, self.range[0]), self.range[1])

    def search(
        self, take: Callable[[float | None, float], float], start: PanelSettings | None = None
    ) -> SearchResult:
        """Run the search; `take(brightness, exposure)` exposes one test frame and returns its level."""
        frames: list[TestFrame] = []
        self._frames = frames
        lim = self.limits
        t = start.exposure if start else lim.start
        t = min(max(t, lim.preferred_min), lim.preferred_max)
        b: float | None = None
        if self.range is not None:
            b = self._round(
                start.brightness if start and start.brightness is not None else sum(self.range) / 2
            )
        try:
            return self._loop(take, frames, t, b)
        except _Found as found:
            note = "the light cannot be set closer; using the best test frame"
            return SearchResult(found.settings, frames, note)

    def _loop(
        self, take: Callable[[float | None, float], float], frames: list[TestFrame], t: float, b: float | None
    ) -> SearchResult:
        below: _Side | None = None
        above: _Side | None = None
        note = ""
        while True:
            if len(frames) >= self.max_test_frames:
                raise FlatError(self._give_up(frames))
            level = take(b, t)
            sat = self.target.saturated(level)
            frames.append(TestFrame(b, t, level, sat))
            log.debug("test frame %d: brightness %s exposure %.3f s level %.0f", len(frames), b, t, level)
            if not sat and self.target.within(level, self.share):
                return SearchResult(PanelSettings(b, t, level), frames, note)
            if self._level_ignores_light(frames):
                raise PanelIgnored(self._ignored_message(frames))
            ratio = self._ratio(level)
            if b is None or self.range is None:
                t = self._next_exposure_or_best(frames, t, level, ratio)
                continue
            side = _Side(b, level, sat)
            if level < self.target.level:
                if below is None or b >= below.brightness:
                    below = side
                    if above is not None:
                        above.kept += 1
            else:
                if above is None or b <= above.brightness:
                    above = side
                    if below is not None:
                        below.kept += 1
            nb = self._next_brightness(b, level, ratio, below, above)
            stuck = nb is None or nb == b or any(f.brightness == nb and f.exposure == t for f in frames)
            # Brightness cannot help (range end, one-step bracket), or the frame budget runs low on a steep
            # panel: finish on the exposure, which is exactly linear, from the best lit frame.
            if stuck or len(frames) >= self.trim_after:
                trimmed_result = self._trim(frames, t, in_range=not stuck or self.range[0] < b < self.range[1])
                if trimmed_result is not None:
                    return trimmed_result
            if not stuck:
                assert nb is not None
                b = nb
                continue
            t = self._next_exposure_or_best(frames, t, level, ratio)

    def _trim(self, frames: list[TestFrame], t: float, in_range: bool) -> SearchResult | None:
        lim = self.limits
        usable = [f for f in frames if f.exposure == t and not f.saturated and self._ratio(f.level) is not None]
        if not usable or not in_range:
            return None
        best = min(usable, key=lambda f: abs(f.level - self.target.level))
        r = self._ratio(best.level)
        assert r is not None and best.brightness is not None
        trimmed = t * r
        if not (lim.preferred_min <= trimmed <= lim.preferred_max and 0.25 <= r <= 4.0):
            return None
        note = f"brightness too coarse or steep; exposure trimmed from {t:g} s to {trimmed:.3g} s"
        predicted = self.pedestal + self._signal(best.level) * r
        return SearchResult(PanelSettings(best.brightness, trimmed, predicted), frames, note)

    def _next_exposure_or_best(self, frames: list[TestFrame], t: float, level: float, ratio: float | None) -> float:
        """The next exposure; when the light cannot change any more, a frame within full tolerance still counts."""
        try:
            return self._next_exposure(frames, t, level, ratio)
        except _Exhausted as end:
            good = [f for f in frames if not f.saturated and self.target.within(f.level)]
            if good:
                best = min(good, key=lambda f: abs(f.level - self.target.level))
                raise _Found(PanelSettings(best.brightness, best.exposure, best.level)) from None
            raise self._exhausted(frames, end.too_bright) from None

    def _next_brightness(
        self, b: float, level: float, ratio: float | None, below: _Side | None, above: _Side | None
    ) -> float | None:
        assert self.range is not None
        lo_b, hi_b = self.range
        if below is not None and above is not None:
            if above.brightness - below.brightness <= self.step:
                return None
            informative = not above.saturated and self._ratio(below.level) is not None
            if informative:
                # Illinois: halve the residual of an end that has stayed put twice, so it cannot stall.
                f_lo = below.level - self.target.level
                f_hi = above.level - self.target.level
                if below.kept >= 2:
                    f_lo /= 2 ** (below.kept - 1)
                if above.kept >= 2:
                    f_hi /= 2 ** (above.kept - 1)
                nb = below.brightness + (-f_lo) * (above.brightness - below.brightness) / (f_hi - f_lo)
            else:
                # geometric steps across a saturated end with a lit one; halving across a dark (dead-zone) end
                lit_below = self._ratio(below.level) is not None
                nb = (
                    math.sqrt(below.brightness * above.brightness)
                    if above.saturated and lit_below
                    else (below.brightness + above.brightness) / 2
                )
            nb = self._round(nb)
            if nb <= below.brightness:
                nb = below.brightness + self.step
            if nb >= above.brightness:
                nb = above.brightness - self.step
            return nb
        if below is not None and b >= hi_b or above is not None and below is None and b <= lo_b:
            return None
        step = self._one_sided(b, level, ratio, below is not None)
        return self._round(step)

    def _one_sided(self, b: float, level: float, ratio: float | None, dim: bool) -> float:
        """Next brightness while every frame so far was on one side of the target.

        With two unsaturated frames on this side the local response gives a secant step (a curve that
        flattens out sends it to the end of the range at once); otherwise level ∝ brightness is assumed.
        """
        if ratio is None:
            return b * 4 if dim else b / 4
        prev = self._previous_same_side(b, dim)
        if prev is not None and prev.brightness is not None:
            slope = (level - prev.level) / (b - prev.brightness)
            if slope <= 0:
                return b * 8 if dim else b / 8
            nb = b + (self.target.level - level) / slope
            return min(max(nb, b / 8), b * 8)
        return b * ratio

    def _previous_same_side(self, b: float, dim: bool) -> TestFrame | None:
        for f in reversed(self._frames[:-1]):
            if f.exposure != self._frames[-1].exposure or f.brightness in (None, b) or f.saturated:
                continue
            if (f.level < self.target.level) == dim and self._ratio(f.level) is not None:
                return f
        return None

    def _next_exposure(self, frames: list[TestFrame], t: float, level: float, ratio: float | None) -> float:
        """Move the exposure: inside the preferred range first, out to the allowed range only when needed."""
        lim = self.limits
        if ratio is None:
            ratio = 0.25 if self.target.saturated(level) else 8.0
        wanted = t * ratio
        if lim.preferred_min <= wanted <= lim.preferred_max:
            new = wanted
        elif wanted < t:
            new = lim.preferred_min if t > lim.preferred_min else max(wanted, lim.allowed_min)
        else:
            new = lim.preferred_max if t < lim.preferred_max else min(wanted, lim.allowed_max)
        if abs(new - t) > 1e-9 * t:
            return new
        if self._level_ignores_light(frames, at_end=True):
            raise PanelIgnored(self._ignored_message(frames))
        raise _Exhausted(wanted < t)

    def _exhausted(self, frames: list[TestFrame], too_bright: bool) -> FlatError:
        lim = self.limits
        t, level = frames[-1].exposure, frames[-1].level
        b = frames[-1].brightness
        where = f"brightness {b:g}, " if b is not None else ""
        if too_bright:
            return PanelTooBright(
                f"the flat level is {self.target.describe(level)} at {where}{t:g} s, the least light allowed; "
                f"dim the panel (diffuser, lower intensity) or allow exposures below {lim.allowed_min:g} s"
            )
        return PanelTooDim(
            f"the flat level is only {self.target.describe(level)} at {where}{t:g} s, the most light allowed; "
            f"brighten the panel or allow exposures above {lim.allowed_max:g} s"
        )

    def _level_ignores_light(self, frames: list[TestFrame], at_end: bool = False) -> bool:
        """True when the light changed at least 4x but the level did not move (0.5 %).

        An unsaturated constant level proves it at once; a saturated one only when the search has run out
        of ways to reduce the light (a far too bright panel looks the same, and the message says so).
        """
        if len(frames) < 2:
            return False
        light = [self._light(f) for f in frames]
        span = max(light) / min(light)
        levels = [f.level for f in frames]
        if (max(levels) - min(levels)) > 0.005 * max(max(levels), 1.0) or span < 4:
            return False
        if min(levels) >= 0.999 * self.target.full_scale and span < 100:
            return False  # clipped at the ADC maximum: likely real light, too much of it
        return at_end or not any(f.saturated for f in frames)

    def _light(self, f: TestFrame) -> float:
        return (f.brightness if f.brightness is not None else 1.0) * f.exposure

    def _ignored_message(self, frames: list[TestFrame]) -> str:
        light = [self._light(f) for f in frames]
        span = max(light) / min(light)
        bs = [f.brightness for f in frames if f.brightness is not None]
        ts = [f.exposure for f in frames]
        where = f"brightness {min(bs):g}–{max(bs):g}, " if bs else ""
        return (
            f"the camera's flat level ignores the panel: it stayed at {frames[-1].level:.0f} ADU over {len(frames)} "
            f"test frames while the light changed ×{span:.0f} ({where}exposure {min(ts):g}–{max(ts):g} s); "
            "check that the panel is on the telescope and lit (a simulated camera may not model it"
            + (", or the panel is far too bright)" if frames[-1].saturated else ")")
        )

    def _give_up(self, frames: list[TestFrame]) -> str:
        tried = ", ".join(
            f"{f.brightness}/{f.exposure:g}s→{self.target.describe(f.level)}" for f in frames[-4:]
        )
        return (
            f"no brightness/exposure reached {self.target.band()} in {len(frames)} test frames (last: {tried}); "
            "the panel's light is unsteady — check its power and cap"
        )


def panel_settings(
    key: str, table: TrainedPanelTable, search: PanelSearch, take: Callable[[float | None, float], float]
) -> tuple[PanelSettings, int, str]:
    """Trained settings when the table has them (no test frames), else a search whose result is stored.

    Returns (settings, test frames used, note).
    """
    trained = table.get(key)
    if trained is not None:
        return trained, 0, ""
    result = search.search(take)
    table.put(key, result.settings)
    return result.settings, len(result.test_frames), result.note
