"""The night's links to the library: its policy, tonight's planned lights, what to capture in a
window, master builds in the worker process, and lights calibrated off the capture thread."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.library.keys import ConfigKey, FrameType, LibraryPolicy, SensorKind
from agent.library.needs import PlannedLight, needs
from agent.library.policy import library_policy
from agent.library.store import Library
from agent.night.context import NightContext

if TYPE_CHECKING:
    from agent.night.clouds import CloudCheck

log = logging.getLogger(__name__)

DARK_KINDS = (FrameType.DARK, FrameType.BIAS, FrameType.DARKFLAT)


def light_key(
    ctx: NightContext, filter_name: str, exposure: float, readout_mode: str | None = None
) -> ConfigKey:
    """The configuration key tonight's lights of this filter/exposure (and readout mode) will carry."""
    cam = ctx.rig.camera
    info = cam.info()
    cfg = ctx.seq.camera
    binning = cfg.binning
    gain = cfg.gain if cfg.gain is not None else cam.gain()
    offset = cfg.offset if cfg.offset is not None else cam.offset()
    return ConfigKey(
        frame_type=FrameType.LIGHT,
        camera=cam.name,
        sensor_kind=SensorKind(cfg.sensor),
        width=info.width // binning,
        height=info.height // binning,
        binning=f"{binning}x{binning}",
        gain=None if gain is None else float(gain),
        offset=None if offset is None else float(offset),
        readout_mode=readout_mode or cfg.readout_mode or cam.current_readout_mode(),
        bit_depth=16,
        filter=filter_name,
        exposure_key=None,
        temperature=ctx.set_point if ctx.set_point is not None else cfg.set_point,
    )


def planned_lights(ctx: NightContext) -> list[PlannedLight]:
    seen: dict[tuple[str, float, str | None], PlannedLight] = {}
    for block in ctx.plan.blocks:
        mode = block.config.readout_mode
        if (block.filter, block.exposure, mode) not in seen:
            seen[(block.filter, block.exposure, mode)] = PlannedLight(
                light_key(ctx, block.filter, block.exposure, mode), block.exposure
            )
    return list(seen.values())


@dataclass(frozen=True)
class CaptureJob:
    """Frames to capture with the cap closed: what, at which exposure, how many more."""

    frame_type: str
    exposure: float
    count: int
    reason: str
    readout_mode: str | None = None  # the lights' mode: their calibration must be taken in it


def dark_jobs(ctx: NightContext, kinds: tuple[FrameType, ...] = DARK_KINDS) -> list[CaptureJob]:
    """What the library says is missing for tonight's lights, in urgency order, as capture jobs."""
    policy = library_policy(ctx.seq)
    found = needs(ctx.library, policy, plan=planned_lights(ctx), now=ctx.now().timestamp())
    jobs: dict[tuple[str, float, str | None], CaptureJob] = {}
    set_point = ctx.set_point if ctx.set_point is not None else ctx.seq.camera.set_point
    tolerance = policy.temperature_tolerance
    for need in found:
        kind = need.frame_type
        key = need.key
        if key.camera != ctx.rig.camera.name:
            continue
        if (
            set_point is not None
            and key.temperature is not None
            and abs(key.temperature - set_point) > tolerance
        ):
            continue  # another night's temperature: not something we can capture tonight
        if need.kind == "waiting" and kind is FrameType.FLAT and key.exposure_key is not None:
            # flats wait for their dark flats: capture those at the flat exposure
            kind, count = FrameType.DARKFLAT, policy.min_for(FrameType.DARKFLAT)
            count -= ctx.count_frames("darkflat", key.exposure_key)
        elif need.kind in ("missing", "expired", "accumulating", "expiring") and kind in kinds:
            count = need.target - need.have
        else:
            continue
        if kind not in kinds or count <= 0:
            continue
        exposure = 0.0 if kind is FrameType.BIAS else float(key.exposure_key or 0.0)
        if kind is FrameType.DARK and key.exposure_key is None:
            continue  # a CCD dark of "any exposure": taken with the longest light exposure below
        ident = (kind.value, exposure, key.readout_mode)
        if ident not in jobs:
            jobs[ident] = CaptureJob(kind.value, exposure, count, need.reason, key.readout_mode)
    bias_count = ctx.seq.calibration.bias.count
    if FrameType.BIAS in kinds and bias_count > 0 and not any(k[0] == "bias" for k in jobs) and ctx.plan.blocks:
        # The sequence asks for a bias library even where the lights' recipe does not use one (CMOS):
        # flats fall back to it, and it tracks the sensor's offset over time.
        from agent.library.match import choose_master

        block = ctx.plan.blocks[0]
        mode = block.config.readout_mode
        wanted = light_key(ctx, block.filter, block.exposure, mode).for_type(FrameType.BIAS)
        choice = choose_master(ctx.library, wanted, policy, now=ctx.now().timestamp())
        if choice.master is None or choice.master.expires_at <= ctx.now().timestamp():
            group = [g for g in ctx.library.groups(policy, FrameType.BIAS) if g.key.exact() == wanted.exact()]
            have = max((g.count for g in group), default=0)
            count = max(bias_count, policy.min_for(FrameType.BIAS)) - have
            if count > 0:
                jobs[("bias", 0.0, mode)] = CaptureJob("bias", 0.0, count, "no current master bias", mode)
    if ctx.seq.camera.sensor == "ccd":
        longest = max((b.exposure for b in ctx.plan.blocks), default=None)
        if longest is not None and any(
            n.frame_type is FrameType.DARK and n.kind in ("missing", "expired", "accumulating") for n in found
        ):
            have = ctx.library.count_accumulating(FrameType.DARK, ctx.rig.camera.name)
            count = policy.min_for(FrameType.DARK) - int(have)
            if count > 0:
                mode = ctx.plan.blocks[0].config.readout_mode
                jobs.setdefault(
                    ("dark", longest, mode), CaptureJob("dark", longest, count, "CCD dark (scalable)", mode)
                )
    return list(jobs.values())


def flat_needs(ctx: NightContext) -> dict[str, int]:
    """Filter -> flats still lacking for tonight's lights, as the library counts them."""
    policy = library_policy(ctx.seq)
    found = needs(ctx.library, policy, plan=planned_lights(ctx), now=ctx.now().timestamp())
    wanted: dict[str, int] = {}
    for need in found:
        if need.frame_type is not FrameType.FLAT or need.key.filter is None:
            continue
        if need.kind in ("missing", "expired", "accumulating"):
            wanted[need.key.filter] = max(wanted.get(need.key.filter, 0), need.target - need.have)
    order = {name: i for i, name in enumerate(ctx.seq.filters)}
    return {f: n for f, n in sorted(wanted.items(), key=lambda kv: order.get(kv[0], 99)) if n > 0}


class LightCalibrator:
    """Calibrates lights on a background thread so capture never waits for it."""

    def __init__(self, ctx: NightContext) -> None:
        self.ctx = ctx
        self.policy = library_policy(ctx.seq)
        self.queue: queue.Queue[Path | None] = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="light-calibration", daemon=True)
        self.thread.start()
        self.calibrated = 0
        self.failed = 0
        self.clouded = 0
        self.clouds = _cloud_check(ctx)

    def submit(self, path: Path) -> None:
        self.queue.put(path)

    def _work(self) -> None:
        from agent.library.store import Library

        lib = Library.open(self.ctx.data_dir)  # own connection: SQLite connections stay on their thread
        try:
            while True:
                path = self.queue.get()
                if path is None:
                    return
                if not lib.db_path.exists():
                    log.error("not calibrating %s: the data folder is gone", path.name)
                    continue
                try:
                    if self.clouds is not None and self._cloudy(lib, path):
                        continue
                    status = calibrate_light_file(lib, path, self.policy, self.ctx.data_dir)
                    if status == "calibrated":
                        self.calibrated += 1
                except Exception:  # a bad light must not stop the night
                    self.failed += 1
                    log.exception("calibrating %s failed", path)
        finally:
            lib.close()

    def _cloudy(self, lib: Library, path: Path) -> bool:
        """Judge the light against tonight's clear ones; a cloudy light is rejected with the reason."""
        from agent.fitsfile import read_image

        assert self.clouds is not None
        row = lib.light_frame(path)
        if row is None:
            return False
        image = read_image(path)
        header = image.header
        key = (str(header.get("OBJECT") or path.parent.name), str(row["filter"] or ""), float(row["exposure"] or 0))
        verdict = self.clouds.judge(image.data, key)
        gate = self.ctx.safety
        if verdict.ok:
            if gate is not None:
                gate.report_light(cloudy=False)
            return False
        reason = verdict.reason or "cloud"
        lib.reject_light(int(row["id"]), reason)
        self.clouded += 1
        log.warning("%s rejected: %s", path.name, reason)
        if gate is not None:
            pause = gate.report_light(cloudy=True)
            if pause:
                log.warning("%s", pause)
        return True

    def drain(self, timeout: float = 600.0) -> None:
        end = time.monotonic() + timeout
        while not self.queue.empty() and time.monotonic() < end:
            time.sleep(0.05)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=60)


def _cloud_check(ctx: NightContext) -> CloudCheck | None:
    """The night's judge of clouds in its own lights (the sequence's safety.cloud_check)."""
    settings = ctx.seq.safety.cloud_check
    if not settings.enabled:
        return None
    from agent.night.clouds import CloudCheck

    pedestal = 0.0
    try:
        from agent.night.sky_flats import bias_level

        pedestal, _ = bias_level(ctx)
    except Exception:  # noqa: BLE001 - no master bias yet: the star count still judges
        log.debug("no bias level for the cloud check", exc_info=True)
    return CloudCheck(settings.min_star_fraction, settings.max_sky_ratio, settings.min_stars, pedestal=pedestal)


def calibrate_light_file(lib: Library, path: Path, policy: LibraryPolicy, data_dir: Path) -> str:
    """Match masters for one light, calibrate it and record the outcome in the library."""
    from agent.night.lightcal import calibrate_light

    return calibrate_light(lib, path, policy)


def recalibrate_pending(ctx: NightContext) -> int:
    """Queue tonight's lights that are not calibrated yet (masters arrived later, or were replaced)."""
    if ctx.calibrator is None:
        return 0
    paths = ctx.library.lights_to_calibrate(ctx.night_dir)
    for path in paths:
        ctx.calibrator.submit(path)
    return len(paths)


class MasterBuilder:
    """The library's build runner: stacking in a worker process, polled between exposures."""

    def __init__(self, ctx: NightContext) -> None:
        from agent.library.builder import BuildRunner

        self.runner = BuildRunner(ctx.library, library_policy(ctx.seq))
        self.sync: Uploads | None = None

    def poll(self) -> None:
        self.runner.maybe_sweep()
        self.runner.poll()
        self._queue_new_masters()

    def _queue_new_masters(self) -> None:
        """Masters reach the upload queue within one poll of being registered."""
        ids = self.runner.new_masters()
        if ids and self.sync is not None:
            self.sync.queue_masters(ids)

    def finish(self, stop: threading.Event | None = None) -> bool:
        """Build everything that is ready now and wait for it (morning); False if `stop` came first."""
        from agent.library.builder import schedule

        schedule(self.runner.lib, self.runner.policy)
        finished = self.runner.wait(stop)
        self._queue_new_masters()
        if self.sync is not None:
            self.sync.wake()
        return finished

    def close(self) -> None:
        self.runner.stop()


class Uploads(Protocol):
    """Where new masters go upstream: the sync worker, started by whoever runs the night."""

    def queue_masters(self, master_ids: list[int]) -> None:
        """These masters were just registered: queue them for upload and send them soon."""

    def wake(self) -> None:
        """Look at the library's outbox now."""

    def make_room(self, free_bytes: int) -> tuple[int, int]:
        """Delete raw frames of masters verified upstream until `free_bytes` are free (the
        sequence's `housekeeping.prune_synced`); returns (frames deleted, bytes freed)."""

    def stop(self) -> None: ...


UploadsFactory = Callable[[Path, str], Uploads]
"""(data directory, the sequence's sync URL) -> a started uploader."""


def attach_services(ctx: NightContext, uploads: UploadsFactory | None = None) -> None:
    ctx.builder = MasterBuilder(ctx)
    ctx.calibrator = LightCalibrator(ctx)
    if ctx.seq.sync is not None:
        if uploads is None:
            ctx.note("warning", f"sync to {ctx.seq.sync.url} not started: this run has no uploader")
            return
        try:
            ctx.sync = uploads(ctx.data_dir, ctx.seq.sync.url)
            ctx.builder.sync = ctx.sync
        except Exception as exc:  # a bad sync target must not stop the night; it is reported
            ctx.note("warning", f"sync to {ctx.seq.sync.url} not started: {exc}")


def finish_masters(ctx: NightContext) -> None:
    """Build the masters that are ready and calibrate the lights that waited for them.

    Needs no hardware, so it runs whatever happened to the capture (cap jammed, camera gone,
    unsafe); only a stop request cuts it short (the next run or sweep finishes the job).
    """
    if ctx.builder is not None:
        ctx.note("info", "building the masters that are ready")
        if not ctx.builder.finish(ctx.abort):
            return
    if ctx.calibrator is not None and not ctx.abort.is_set():
        n = recalibrate_pending(ctx)
        if n:
            ctx.note("info", f"calibrating {n} light(s) that waited for masters")
        ctx.calibrator.drain()
