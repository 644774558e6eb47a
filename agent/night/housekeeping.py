"""Before each frame: is the data folder still there, and is there room for the frame?

A pulled USB disk or a full one must stop capture cleanly with a message a person can act on,
never fail every few seconds deep inside a FITS writer. Space is measured, not guessed: the
frame about to be written (with room for its calibrated copy) must leave the configured reserve.
"""

from __future__ import annotations

import errno
import shutil

from agent.errors import ObsAgentError
from agent.night.context import NightContext, SkyClosed


class DataGone(ObsAgentError):
    """The data folder vanished (a USB disk pulled, a share unmounted): the night stops safely."""


class DiskLow(SkyClosed):
    """Too little free space for the next frame: capture holds until space returns."""


PRUNE_FOR_FRAMES = 50  # pruning makes room for this many frames above the reserve, not one at a time


def free_bytes(ctx: NightContext) -> int:
    return int(shutil.disk_usage(ctx.data_dir).free)


def frame_bytes(ctx: NightContext) -> int:
    """A generous size of one frame as stored (16-bit raw plus a float calibrated copy)."""
    geometry = getattr(ctx.rig.camera, "geometry", None)
    pixels = geometry.width * geometry.height if geometry is not None else 6248 * 4176
    return int(pixels * 6 + 64 * 1024)


def space_problem(ctx: NightContext) -> str | None:
    """None when the next frame fits above the reserve, else the message to show."""
    reserve = int(ctx.seq.housekeeping.min_free_mb) * 1024 * 1024
    try:
        free = free_bytes(ctx)
    except FileNotFoundError:
        raise data_gone(ctx) from None
    except OSError as exc:
        if exc.errno in (errno.EIO, errno.ENODEV, errno.ENXIO, errno.ESTALE):
            raise data_gone(ctx) from exc
        raise
    need = reserve + frame_bytes(ctx)
    if free >= need:
        return None
    if ctx.seq.housekeeping.prune_synced and ctx.sync is not None:
        free = make_room(ctx, reserve + PRUNE_FOR_FRAMES * frame_bytes(ctx))
        if free >= need:
            return None
    fix = ("free some space; raw frames of masters not yet verified upstream are kept"
           if ctx.seq.housekeeping.prune_synced else
           "free some space, or set housekeeping.prune_synced to let raw frames of masters verified upstream go")
    return (
        f"disk low: {free / 2**20:.0f} MB free in {ctx.data_dir}, capture needs {need / 2**20:.0f} MB "
        f"(housekeeping.min_free_mb = {ctx.seq.housekeeping.min_free_mb}); {fix}"
    )


def make_room(ctx: NightContext, wanted: int) -> int:
    """Have the uploader delete raw calibration frames whose masters are verified upstream, oldest
    first, until `wanted` bytes are free (never a light, never a frame of an unconfirmed master).
    Returns the free bytes after."""
    assert ctx.sync is not None
    count, freed = ctx.sync.make_room(wanted)
    if count:
        ctx.note("info", f"disk low: removed {count} raw calibration frame(s) ({freed / 2**20:.0f} MB) "
                         "whose masters are verified upstream")
    return free_bytes(ctx)


def data_gone(ctx: NightContext) -> DataGone:
    return DataGone(
        f"the data folder {ctx.data_dir} is gone (disk unplugged or unmounted?); the night stops with the "
        "rig made safe — plug the disk back in and the service resumes"
    )


def check_space(ctx: NightContext) -> None:
    """Raise `DataGone` or `DiskLow` before a frame that could not be kept."""
    if not ctx.data_dir.is_dir() or not ctx.library.db_path.exists():
        raise data_gone(ctx)  # an empty mount point left by a pulled disk is gone too
    problem = space_problem(ctx)
    if ctx.safety is not None:
        ctx.safety.set_disk_low(problem)
    if problem is not None:
        raise DiskLow(problem)
