"""`indi_obsagent_sim`: one indipydriver executable hosting the simulated observatory.

Devices (names from the config): a camera, a filter wheel, a flip-flat (dust cap + light), a mount,
a clock and, with a weather scenario, a weather station, one module each. They share one `Observatory` (`indi_sim.world`), so the cap, the light,
the filter, the pointing and the Sun all change what the camera sees. Runs under indiserver over
stdin/stdout; configuration comes from the JSON file named by OBSAGENT_SIM_CONFIG. Property
reference: docs/simulator.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import sys
import xml.etree.ElementTree as ET
from typing import Any

from indipydriver import Device, IPyDriver

from indi_sim.camera import Camera
from indi_sim.clock import ClockDevice
from indi_sim.config import load_config
from indi_sim.faults import switch_faults
from indi_sim.model import SimModel
from indi_sim.mount import Mount
from indi_sim.panel import FlipFlat
from indi_sim.vectors import refuse, set_one, switched_on
from indi_sim.weather import WeatherStation
from indi_sim.wheel import FilterWheel
from indi_sim.wire import MessageWriter
from indi_sim.world import Observatory, build_world

log = logging.getLogger("indi_obsagent_sim")

TICK_S = 0.25  # wall seconds between hardware updates


class SimDriver(IPyDriver):
    """All devices of the simulated observatory in one driver process."""

    def __init__(self, world: Observatory) -> None:
        self.world = world
        cfg = world.cfg
        self.camera = Camera(self, world, cfg.camera_name)
        self.wheel = FilterWheel(self, world, cfg.wheel_name)
        self.panel = FlipFlat(self, world, cfg.panel_name)
        self.mount = Mount(self, world, cfg.mount_name)
        self.clock_device = ClockDevice(self, world, cfg.clock_name)
        self.weather = WeatherStation(self, world, cfg.weather_name, world.weather) if world.weather else None
        hosted: list[Any] = [self.camera, self.wheel, self.panel, self.mount, self.clock_device]
        if self.weather is not None:
            hosted.append(self.weather)
        super().__init__(*(Device(d.name, d.properties()) for d in hosted))
        self._tasks: list[asyncio.Task[None]] = []
        self._writer = MessageWriter()
        if not cfg.connected:  # like a real driver: most properties come with CONNECT
            for device in self.connectable():
                device.hide_until_connected()

    def connectable(self) -> tuple[Camera | FilterWheel | FlipFlat | Mount | WeatherStation, ...]:
        """The devices with a CONNECTION (the clock has none: simulated time always runs)."""
        base = (self.camera, self.wheel, self.panel, self.mount)
        return (*base, self.weather) if self.weather is not None else base

    async def send(self, xmldata: ET.Element) -> None:
        """Write each message whole (see `MessageWriter`), not through indipydriver's own writer."""
        if self.stop:
            return
        await self._writer.write(xmldata)

    def connected(self, device: str) -> bool:
        return switched_on(self[device]["CONNECTION"]) == "CONNECT"

    # ------------------------------------------------------------------ events
    async def rxevent(self, event: object) -> None:
        try:
            await self._dispatch(event)
        except Exception:  # a bad request must never kill the driver
            log.exception("error handling %s", getattr(event, "vectorname", event))

    async def _dispatch(self, event: object) -> None:
        devicename = getattr(event, "devicename", None)
        vectorname = str(getattr(event, "vectorname", ""))
        vector = getattr(event, "vector", None)
        if devicename is None or vector is None or not hasattr(event, "items"):
            return
        values: dict[str, str] = dict(event.items())
        if vectorname == "CONNECTION":
            on = "CONNECT" if values.get("CONNECT") == "On" or values.get("DISCONNECT") == "Off" else "DISCONNECT"
            was = self.connected(devicename)
            set_one(vector, on)
            await vector.send_setVector(state="Ok" if on == "CONNECT" else "Idle")
            device = next(d for d in self.connectable() if d.name == devicename)
            if on == "CONNECT" and not was:
                await device.define_connected()
            elif on == "DISCONNECT" and was:
                await device.delete_connected()
            return
        if devicename == self.clock_device.name:
            await self.clock_device.event(vectorname, vector, values)
            return
        # simulation controls answer while disconnected
        if vectorname == "SIM_FAULTS":
            await switch_faults(self.world, vector, values)
            return
        if vectorname == "SIM_LIGHT_LEAK":
            await self.panel.light_leak_event(vector, values)
            return
        if not self.connected(devicename):
            await refuse(vector, f"{devicename} is not connected")
            return
        for device in self.connectable():
            if devicename == device.name:
                await device.event(vectorname, vector, values)
                device.remember(vectorname, vector)
                break

    # ------------------------------------------------------------------ hardware loop
    async def hardware(self) -> None:
        w = self.world
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, _warm_up, w.model)
        if w.cfg.connected:  # started connected: the saved settings apply at once
            for device in self.connectable():
                await device.load_config()
            if self.weather is not None:
                self.weather.update_now()
        self._tasks.append(asyncio.create_task(self.clock_device.watch()))
        if self.weather is not None:
            self._tasks.append(asyncio.create_task(self.weather.run()))
        last_sim = w.clock.now()
        last_publish = -1e9
        while not self.stop:
            await asyncio.sleep(TICK_S)
            if server_gone():  # a driver without its indiserver is a leftover
                log.warning("indiserver is gone (our stdin was closed); exiting")
                os._exit(0)
            try:
                now = w.clock.now()
                w.cooler.advance((now - last_sim).total_seconds())
                last_sim = now
                await self.camera.publish_cooler()
                if loop.time() - last_publish >= 1.0:
                    last_publish = loop.time()
                    await self.clock_device.publish()
                    if not self.mount.slewing():
                        w.update_pointing(now)
                        await self.mount.publish()
            except Exception:
                log.exception("hardware loop")


def server_gone() -> bool:
    """True once every writer of our stdin (the indiserver) has gone: poll reports a hang-up.

    indipydriver reads stdin without blocking and cannot tell its end from a pause, so the
    hardware loop asks; this holds however the server died, even before we finished starting.
    """
    poller = select.poll()
    poller.register(sys.stdin.fileno(), select.POLLHUP)
    return any(event & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, event in poller.poll(0))


def _warm_up(model: SimModel) -> None:
    """Draw the fixed maps before the first exposure so it is not slower than the rest."""
    truth = model.truth()
    _ = truth.dark_current_e_s, truth.amp_glow_e, truth.prnu
    for f in model.filters[:1]:
        model.flat_shape(f.name, "sky")
        model.flat_shape(f.name, "panel")


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="indi_obsagent_sim: %(levelname)s %(message)s")
    try:
        cfg = load_config()
        world = build_world(cfg)
    except Exception as exc:  # indiserver shows stderr; say why we cannot start
        print(f"indi_obsagent_sim: cannot start: {exc}", file=sys.stderr)
        sys.exit(2)
    driver = SimDriver(world)
    asyncio.run(driver.asyncrun())


if __name__ == "__main__":
    main()
