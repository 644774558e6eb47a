"""The simulated clock device: the observatory's simulated time (rate, fast-forward, slow motion
around weather transitions), the Sun it implies, and the cloud cover. It has no CONNECTION: time
runs whether or not a client is attached. Every change of rate is published at once (and saved to
the clock file, so a restarted driver and the launcher follow the same time).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from indipydriver import NumberVector, TextMember, TextVector

from indi_sim.config import save_clock
from indi_sim.device import SimDevice
from indi_sim.vectors import driver_info, iso, number, refuse, to_float

log = logging.getLogger("indi_obsagent_sim")

class ClockDevice(SimDevice):
    """SIM_CLOCK, SIM_TIME_FACTOR, SIM_FAST_FORWARD, SIM_SUN and SIM_SKY, with the site's location."""

    def properties(self) -> list[Any]:
        world, cfg = self.world, self.world.cfg
        sun_alt, sun_az = world.sun()
        return [
            driver_info("obsagent simulated clock", 0),
            TextVector("SIM_CLOCK", "Simulated time", "Main Control", "ro", "Ok", [
                TextMember("UTC", "UTC", iso(world.clock.now())),
                TextMember("TIME_FACTOR", "Time factor", f"{world.clock.factor:g}"),
                TextMember("BASE_FACTOR", "Base time factor", f"{world.clock.base_factor:g}"),
                TextMember("FAST_UNTIL", "Fast until", ""),
                TextMember("NEXT_CHANGE", "Rate changes at", ""),
                TextMember("NEXT_FACTOR", "Time factor then", "")]),
            NumberVector("SIM_TIME_FACTOR", "Time factor", "Main Control", "rw", "Ok", [
                number("TIME_FACTOR", "Sim s per wall s", "%g", 0.001, 100000, 0, world.clock.factor)]),
            NumberVector("SIM_FAST_FORWARD", "Fast forward", "Main Control", "rw", "Ok", [
                number("UNTIL", "Until (unix s, 0 = stop)", "%.0f", 0, 1e11, 0, 0),
                number("FACTOR", "Sim s per wall s", "%g", 1, 1000000, 0, world.clock.factor)]),
            NumberVector("SIM_SUN", "Sun", "Main Control", "ro", "Ok", [
                number("SUN_ALT", "Altitude (deg)", "%.3f", -90, 90, 0, round(sun_alt, 3)),
                number("SUN_AZ", "Azimuth (deg)", "%.3f", 0, 360, 0, round(sun_az, 3))]),
            NumberVector("SIM_SKY", "Sky", "Main Control", "rw", "Ok", [
                number("CLOUD_COVER", "Cloud cover (0-1)", "%.2f", 0, 1, 0, world.cloud_at())]),
            NumberVector("GEOGRAPHIC_COORD", "Location", "Site Management", "ro", "Ok", [
                number("LAT", "Lat (dd:mm:ss)", "%010.6m", -90, 90, 0, cfg.lat),
                number("LONG", "Lon (dd:mm:ss)", "%010.6m", 0, 360, 0, cfg.lon % 360.0),
                number("ELEV", "Elevation (m)", "%g", -200, 10000, 0, cfg.elevation)]),
        ]

    async def event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w = self.world
        if name == "SIM_TIME_FACTOR":
            factor = to_float(values["TIME_FACTOR"])
            if factor <= 0:
                await refuse(vector, "time factor must be > 0")
                return
            w.clock.set_factor(factor)
            vector["TIME_FACTOR"] = factor  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
            self.save()
            await self.publish()
        elif name == "SIM_FAST_FORWARD":
            until_unix = to_float(values.get("UNTIL", "0"))
            factor = to_float(values.get("FACTOR", str(w.clock.base_factor)))
            if factor <= 0:
                await refuse(vector, "fast-forward factor must be > 0")
                return
            until = datetime.fromtimestamp(until_unix, UTC) if until_unix > 0 else None
            w.clock.fast_forward(until, factor)
            vector["UNTIL"], vector["FACTOR"] = until_unix, factor  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
            self.save()
            await self.publish()
        elif name == "SIM_SKY":
            if w.weather is not None:
                await refuse(vector, "the weather scenario drives the clouds")
                return
            w.cloud_cover = min(1.0, max(0.0, to_float(values["CLOUD_COVER"])))
            vector["CLOUD_COVER"] = w.cloud_cover  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]

    async def publish(self) -> None:
        """Send simulated time and the Sun (every second from the hardware loop, and on every change)."""
        w = self.world
        dev = self.driver[self.name]
        clock = dev["SIM_CLOCK"]
        clock["UTC"] = iso(w.clock.now())
        clock["TIME_FACTOR"] = f"{w.clock.factor:g}"
        clock["BASE_FACTOR"] = f"{w.clock.base_factor:g}"
        clock["FAST_UNTIL"] = iso(w.clock.fast_until) if w.clock.fast_until else ""
        edge = w.clock.next_change(w.clock.now())
        clock["NEXT_CHANGE"] = iso(edge) if edge else ""
        clock["NEXT_FACTOR"] = f"{w.clock.rate_at(edge):g}" if edge else ""
        await clock.send_setVector(state="Ok")
        sun_alt, sun_az = w.sun()
        sun = dev["SIM_SUN"]
        sun["SUN_ALT"], sun["SUN_AZ"] = round(sun_alt, 3), round(sun_az, 3)
        await sun.send_setVector(state="Ok")

    def save(self) -> None:
        """Write the clock's anchor for a restarted driver and for the launcher (when a clock file is set)."""
        cfg = self.world.cfg
        if cfg.clock_file:
            try:
                save_clock(cfg.clock_file, self.world.clock, cfg.start)
            except OSError:
                log.exception("cannot save the clock to %s", cfg.clock_file)

    async def watch(self) -> None:
        """Publish (and save) the clock the moment its rate changes: a transition's slow motion, the end
        of a fast-forward. Clients extrapolate from the last SIM_CLOCK, so a late one would mislead them."""
        w, seen, cloud = self.world, -1, -1.0
        await asyncio.sleep(0.25)  # indiserver asks for our definitions first
        while not self.driver.stop:
            try:
                now = w.clock.now()
                if w.clock.version != seen:
                    seen = w.clock.version
                    self.save()
                    await self.publish()
                if w.cloud_at(now) != cloud:
                    cloud = w.cloud_at(now)
                    sky = self.driver[self.name]["SIM_SKY"]
                    sky["CLOUD_COVER"] = round(cloud, 3)
                    await sky.send_setVector(state="Ok")
                edge = w.clock.next_change(now)
                wait = w.clock.wall_until(edge) if edge is not None else 0.5
            except Exception:
                log.exception("clock watch")
                wait = 0.5
            await asyncio.sleep(min(max(wait, 0.0005), 0.5))
