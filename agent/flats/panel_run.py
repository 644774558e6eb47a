"""The panel flat run: per filter, trained or searched settings, the flats, then their dark flats."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.devices.hygiene import bit_depth_problem
from agent.flats.panel_search import ExposureLimits, PanelSearch, panel_settings
from agent.flats.target import FlatError, FlatTarget, PanelIgnored, PanelSettings, frame_level
from agent.flats.trained import TrainedPanelTable

if TYPE_CHECKING:
    from agent.devices.frame import Frame
    from agent.devices.rig import Rig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlatGroup:
    """What a set of flats must share with the lights it calibrates."""

    camera: str
    filter: str
    gain: float | None = None
    offset: float | None = None
    binning: int = 1
    readout_mode: str | None = None

    def key(self) -> str:
        def part(v: object) -> str:
            return "-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))

        return "|".join(
            part(v) for v in (self.camera, self.filter, self.gain, self.binning, self.readout_mode)
        )


@dataclass
class FilterOutcome:
    filter: str
    wanted: int
    flats: list[Path] = field(default_factory=list)
    dark_flats: list[Path] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    levels: list[float] = field(default_factory=list)
    settings: PanelSettings | None = None
    trained: bool = False  # settings came from the trained table (no search)
    test_frames: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class PanelRunReport:
    outcomes: list[FilterOutcome]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.error is None and len(o.flats) >= o.wanted for o in self.outcomes)


FrameSink = Callable[["Frame", str, FlatGroup, float], Path]  # (frame, kind, group, exposure) -> stored path


def _stem(kind: str, group: FlatGroup) -> str:
    safe = group.filter.replace(" ", "_").replace("/", "_")
    gain = "" if group.gain is None else f"_g{group.gain:g}"
    return f"{kind}_{safe}{gain}_bin{group.binning}"


def directory_sink(root: Path) -> FrameSink:
    """Write frames atomically as `root/<kind>/<kind>_<filter>_g<gain>_bin<b>_<exp>s_<n>.fits`, never overwriting."""

    def sink(frame: Frame, kind: str, group: FlatGroup, exposure: float) -> Path:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        index = existing_count(root, kind, group, exposure) + 1
        while True:
            path = folder / f"{_stem(kind, group)}_{exposure:.4g}s_{index:04d}.fits"
            if not path.exists():
                return frame.write(path)
            index += 1

    return sink


def existing_count(root: Path, kind: str, group: FlatGroup, exposure: float | None = None) -> int:
    """Frames of this group already written by an earlier (perhaps interrupted) run: a rerun resumes."""
    exp = "*" if exposure is None else f"{exposure:.4g}"
    return len(list((root / kind).glob(f"{_stem(kind, group)}_{exp}s_*.fits")))


def run_panel_flats(
    rig: Rig,
    needs: Mapping[str, int],
    target: FlatTarget,
    table: TrainedPanelTable,
    sink: FrameSink,
    limits: ExposureLimits | None = None,
    gain: float | None = None,
    offset: float | None = None,
    binning: int = 1,
    readout_mode: str | None = None,
    dark_flats: bool = True,
    dark_flat_needs: Mapping[str, int] | None = None,
    light_bit_depth: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> PanelRunReport:
    """Close the cap, light the panel and take the needed flats (then dark flats) filter by filter.

    `needs` maps filter -> flats still lacking (the library's answer, or what is left of --count).
    Stops at the first rig-level failure (panel ignored, too dim/bright is per filter) and says why.
    """
    if rig.panel is None:
        raise FlatError(
            "panel flats need a flat panel; name it in indi.devices.flat_panel or use --source sky"
        )
    cam, panel = rig.camera, rig.panel
    limits = limits or ExposureLimits()
    report = PanelRunReport(outcomes=[])
    if gain is not None:
        cam.set_gain(gain)
    if offset is not None:
        cam.set_offset(offset)
    cam.set_binning(binning)
    if readout_mode is not None:
        cam.set_readout_mode(readout_mode)  # the lights' mode, before every flat block
    # the rule of the night's start-up check: CCD_INFO's bits per pixel is the container (16 for a
    # 12- or 14-bit sensor read as 16-bit raw), ZWO's ADC_DEPTH the sensor's own depth
    if problem := bit_depth_problem(cam.client, cam.name, light_bit_depth):
        report.notes.append(f"flats and lights may differ: {problem}")
    if panel.has_cap:
        panel.close_cap()
    else:
        report.notes.append(f"{panel.name} has no dust cap; it must sit on the telescope by hand")
    brightness_range = panel.brightness_range() if panel.has_brightness else None
    if brightness_range is None:
        report.notes.append(
            f"{panel.name} has no intensity control: searching exposure at its fixed brightness"
        )
    panel.light(True)
    light_on = True
    real_gain = cam.gain() if gain is None else gain
    stopped: str | None = None
    try:
        for filter_name, wanted in needs.items():
            outcome = FilterOutcome(filter=filter_name, wanted=wanted)
            report.outcomes.append(outcome)
            if stopped:
                outcome.error = f"skipped: {stopped}"
                continue
            if wanted <= 0:
                continue
            group = FlatGroup(
                cam.name, filter_name, real_gain, offset, binning, readout_mode or cam.current_readout_mode()
            )
            if rig.wheel is not None:
                rig.wheel.move_to(filter_name)
            elif filter_name:
                outcome.notes.append("no filter wheel: the filter in the light path is assumed")
            if not light_on:
                panel.light(True)
                light_on = True

            def take(brightness: float | None, exposure: float, filter_name: str = filter_name) -> float:
                if brightness is not None:
                    panel.set_brightness(brightness)
                return frame_level(cam.expose(exposure, "flat", filter_name=filter_name).data)

            search = PanelSearch(target, brightness_range, limits)
            try:
                settings, frames_used, note = panel_settings(group.key(), table, search, take)
                outcome.trained = frames_used == 0
                outcome.test_frames = frames_used
                if note:
                    outcome.notes.append(note)
                if settings.brightness is not None:
                    panel.set_brightness(settings.brightness)
            except PanelIgnored as exc:
                outcome.error = str(exc)
                stopped = "the camera's flat level ignores the panel (see the first filter)"
                continue
            except FlatError as exc:
                outcome.error = str(exc)
                continue
            outcome.settings = settings
            _take_flats(cam, group, settings, outcome, target, sink, progress, table, search, take)
            if dark_flats and outcome.flats:
                panel.light(False)
                light_on = False
                n = len(outcome.flats) if dark_flat_needs is None else dark_flat_needs.get(filter_name, 0)
                exposure = outcome.settings.exposure if outcome.settings else settings.exposure
                for i in range(n):
                    frame = cam.expose(exposure, "darkflat", filter_name=filter_name)
                    outcome.dark_flats.append(sink(frame, "darkflat", group, exposure))
                    if progress:
                        progress(f"dark flats {filter_name}", i + 1, n)
    finally:
        if light_on:
            panel.light(False)
    return report


def _take_flats(
    cam: object,
    group: FlatGroup,
    settings: PanelSettings,
    outcome: FilterOutcome,
    target: FlatTarget,
    sink: FrameSink,
    progress: Callable[[str, int, int], None] | None,
    table: TrainedPanelTable,
    search: PanelSearch,
    take: Callable[[float | None, float], float],
) -> None:
    """Take the flats, checking each level; a drifting panel is re-searched, never looped on."""
    from agent.devices.camera import Camera

    assert isinstance(cam, Camera)
    misses = 0
    researched = False
    while len(outcome.flats) < outcome.wanted:
        frame = cam.expose(settings.exposure, "flat", filter_name=group.filter)
        level = frame_level(frame.data)
        if target.saturated(level) or not target.within(level):
            outcome.rejected.append(
                f"flat at {settings.exposure:g} s: level {target.describe(level)} outside {target.band()}"
            )
            misses += 1
            if misses >= 2:
                if researched:
                    outcome.error = (
                        f"flats keep missing {target.band()} after a fresh search (last {target.describe(level)}); "
                        "the panel light is unsteady"
                    )
                    return
                log.info("%s: flat level drifted to %.0f; searching again", group.filter, level)
                result = search.search(take, start=settings)
                outcome.test_frames += len(result.test_frames)
                settings = result.settings
                outcome.settings = settings
                outcome.trained = False
                table.put(group.key(), settings)
                researched = True
                misses = 0
            continue
        misses = 0
        frame.header["FLATLVL"] = (round(level, 1), "median ADU when captured")
        if settings.brightness is not None:
            frame.header["FLATBRT"] = (settings.brightness, "panel brightness")
        outcome.flats.append(sink(frame, "flat", group, settings.exposure))
        outcome.levels.append(level)
        if progress:
            progress(f"flats {group.filter}", len(outcome.flats), outcome.wanted)
