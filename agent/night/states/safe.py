"""Safe: something went wrong. Make the hardware safe, then reconnect and start again, with backoff."""

from __future__ import annotations

from agent.errors import IndiError
from agent.night.context import Aborted, NightContext
from agent.night.states.shutdown import make_safe

MAX_RECOVERIES = 8


def run(ctx: NightContext) -> str:
    if ctx.rig.client.connected:
        for failure in make_safe(ctx):
            ctx.note("warning", f"making safe: {failure}")
    recoveries = int(ctx.status.get("recoveries", 0)) + 1
    ctx.status["recoveries"] = recoveries
    if recoveries > MAX_RECOVERIES:
        raise Aborted(f"gave up after {MAX_RECOVERIES} recoveries tonight; see the night log")
    try:
        if not ctx.rig.client.connected:
            ctx.note("warning", f"INDI server {ctx.rig.client.address} lost; reconnecting")
            ctx.rig.client.reconnect(deadline_s=300.0)
        reconnect_rig(ctx)
    except IndiError as exc:
        raise Aborted(f"cannot recover: {exc}") from exc
    ctx.note("info", "devices are back; resuming the night")
    return "recovered"


def reconnect_rig(ctx: NightContext) -> None:
    rig = ctx.rig
    rig.client.wait_devices([rig.camera.name], timeout=30.0)
    rig.camera.connect()
    for device in (rig.wheel, rig.panel, rig.mount):
        if device is None:
            continue
        try:
            device.connect()
        except IndiError as exc:
            ctx.note("warning", f"{device.name} unavailable after reconnect: {exc}; going on without it")
    if ctx.safety is not None:
        ctx.safety.reconnected()
