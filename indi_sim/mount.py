"""The simulated mount: parks at the celestial pole, slews at a fixed rate, tracks or lets the sky
drift, and syncs; its pointing picks the star field the camera sees.
"""

from __future__ import annotations

import asyncio
from typing import Any

from indipydriver import NumberVector, SwitchVector, TextMember, TextVector

from indi_sim import astro
from indi_sim.device import SimDevice
from indi_sim.vectors import (
    INTERFACE,
    connection,
    driver_info,
    iso,
    number,
    refuse,
    set_one,
    switched_on,
    switches,
    to_float,
    turned_on,
)
from indi_sim.world import Observatory

SLEW_DEG_S = 4.0  # simulated slew rate


class Mount(SimDevice):
    """TELESCOPE_PARK, TELESCOPE_TRACK_STATE, ON_COORD_SET, the equatorial and horizontal coordinates,
    TELESCOPE_PIER_SIDE (a German equatorial mount: on the west side of the pier while pointing east
    of the meridian), and GEOGRAPHIC_COORD/TIME_UTC, which a client may set as inditelescope.cpp
    allows (the site is kept in the config). The sky stays the configured site's and simulated time
    runs on: what a client sets is what the mount believes, not the truth.
    """

    SAVED = frozenset({"GEOGRAPHIC_COORD"})

    def __init__(self, driver: Any, world: Observatory, name: str) -> None:
        super().__init__(driver, world, name)
        self._slew_task: asyncio.Task[None] | None = None

    def properties(self) -> list[Any]:
        world, cfg = self.world, self.world.cfg
        return [
            connection(cfg.connected),
            driver_info("obsagent simulated mount", INTERFACE["telescope"]),
            SwitchVector("TELESCOPE_PARK", "Parking", "Main Control", "rw", "OneOfMany", "Ok",
                         switches({"PARK": "Park(ed)", "UNPARK": "UnPark(ed)"}, "PARK")),
            SwitchVector("TELESCOPE_TRACK_STATE", "Tracking", "Main Control", "rw", "OneOfMany", "Ok",
                         switches({"TRACK_ON": "On", "TRACK_OFF": "Off"}, "TRACK_OFF")),
            SwitchVector("ON_COORD_SET", "On Set", "Main Control", "rw", "OneOfMany", "Ok",
                         switches({"TRACK": "Track", "SLEW": "Slew", "SYNC": "Sync"}, "TRACK")),
            NumberVector("EQUATORIAL_EOD_COORD", "Eq. Coordinates", "Main Control", "rw", "Ok", [
                number("RA", "RA (hh:mm:ss)", "%010.6m", 0, 24, 0, world.ra_deg / 15.0),
                number("DEC", "DEC (dd:mm:ss)", "%010.6m", -90, 90, 0, world.dec_deg)]),
            NumberVector("HORIZONTAL_COORD", "Horizontal Coord", "Main Control", "rw", "Ok", [
                number("AZ", "Az D:M:S", "%010.6m", 0, 360, 0, world.az_deg),
                number("ALT", "Alt D:M:S", "%010.6m", -90, 90, 0, world.alt_deg)]),
            SwitchVector("TELESCOPE_PIER_SIDE", "Pier Side", "Main Control", "ro", "OneOfMany", "Ok",
                         switches({"PIER_WEST": "West (pointing east)", "PIER_EAST": "East (pointing west)"},
                                  self.pier_side())),
            NumberVector("GEOGRAPHIC_COORD", "Location", "Site Management", "rw", "Ok", [
                number("LAT", "Lat (dd:mm:ss)", "%010.6m", -90, 90, 0, cfg.lat),
                number("LONG", "Lon (dd:mm:ss)", "%010.6m", 0, 360, 0, cfg.lon % 360.0),
                number("ELEV", "Elevation (m)", "%g", -200, 10000, 0, cfg.elevation)]),
            TextVector("TIME_UTC", "UTC", "Site Management", "rw", "Ok", [
                TextMember("UTC", "UTC Time", iso(world.clock.now())), TextMember("OFFSET", "UTC Offset", "0.00")]),
        ]

    def pier_side(self) -> str:
        """PIER_WEST while the telescope points east of the meridian (hour angle < 0), else PIER_EAST."""
        w = self.world
        ha = (astro.local_sidereal_time_deg(w.clock.now(), w.cfg.lon) - w.ra_deg + 180.0) % 360.0 - 180.0
        return "PIER_WEST" if ha < 0 else "PIER_EAST"

    def slewing(self) -> bool:
        """A slew is under way: its end publishes the pointing, the hardware loop must not."""
        return self._slew_task is not None and not self._slew_task.done()

    async def event(self, name: str, vector: object, values: dict[str, str]) -> None:
        w = self.world
        now = w.clock.now()
        if name == "TELESCOPE_PARK":
            chosen = turned_on(values)
            if chosen == "PARK":
                await self._start_slew(*astro.altaz_to_radec(abs(w.cfg.lat), 0.0 if w.cfg.lat >= 0 else 180.0, now,
                                                              w.cfg.lat, w.cfg.lon), park=True)
                return
            if chosen == "UNPARK":
                w.parked = False
                set_one(vector, "UNPARK")
                await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "TELESCOPE_TRACK_STATE":
            chosen = turned_on(values)
            if chosen == "TRACK_ON" and w.parked:
                await refuse(vector, "mount is parked; unpark first")
                return
            if chosen is not None:
                w.update_pointing(now)
                w.tracking = chosen == "TRACK_ON"
                set_one(vector, chosen)
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "GEOGRAPHIC_COORD":
            for element, text in values.items():
                value = to_float(text)
                member = vector.data[element]  # type: ignore[attr-defined]
                if not float(member.min) <= value <= float(member.max):
                    await refuse(vector, f"{element} {value:g} outside {float(member.min):g}..{float(member.max):g}")
                    return
            for element, text in values.items():
                vector[element] = to_float(text)  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "TIME_UTC":
            for element, text in values.items():
                vector[element] = text  # type: ignore[index]
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name == "ON_COORD_SET":
            chosen = turned_on(values)
            if chosen is not None:
                set_one(vector, chosen)
            await vector.send_setVector(state="Ok")  # type: ignore[attr-defined]
        elif name in ("EQUATORIAL_EOD_COORD", "HORIZONTAL_COORD"):
            if w.parked:
                await refuse(vector, "mount is parked; unpark first")
                return
            if name == "EQUATORIAL_EOD_COORD":
                w.update_pointing(now)
                ra = to_float(values.get("RA", str(w.ra_deg / 15.0))) * 15.0
                dec = to_float(values.get("DEC", str(w.dec_deg)))
            else:
                w.update_pointing(now)
                alt = to_float(values.get("ALT", str(w.alt_deg)))
                az = to_float(values.get("AZ", str(w.az_deg)))
                ra, dec = astro.altaz_to_radec(alt, az, now, w.cfg.lat, w.cfg.lon)
            mode = switched_on(self["ON_COORD_SET"])
            if mode == "SYNC":
                w.ra_deg, w.dec_deg = ra, dec
                w.alt_deg, w.az_deg = astro.radec_to_altaz(ra, dec, now, w.cfg.lat, w.cfg.lon)
                await self.publish(state="Ok")
                return
            await self._start_slew(ra, dec, park=False, track=(mode == "TRACK") if name == "EQUATORIAL_EOD_COORD" else w.tracking)

    async def _start_slew(self, ra: float, dec: float, park: bool, track: bool = False) -> None:
        if self._slew_task is not None and not self._slew_task.done():
            self._slew_task.cancel()
        self._slew_task = asyncio.create_task(self._slew(ra, dec, park, track))

    async def _slew(self, ra: float, dec: float, park: bool, track: bool) -> None:
        w = self.world
        now = w.clock.now()
        w.update_pointing(now)
        alt, az = astro.radec_to_altaz(ra, dec, now, w.cfg.lat, w.cfg.lon)
        distance = max(abs(alt - w.alt_deg), abs((az - w.az_deg + 180) % 360 - 180))
        park_vec = self["TELESCOPE_PARK"]
        if park:
            await park_vec.send_setVector(state="Busy", message="parking")
        await self.publish(state="Busy")
        await w.clock.sleep(distance / SLEW_DEG_S)
        now = w.clock.now()
        w.ra_deg, w.dec_deg = ra, dec
        w.alt_deg, w.az_deg = astro.radec_to_altaz(ra, dec, now, w.cfg.lat, w.cfg.lon)
        track_vec = self["TELESCOPE_TRACK_STATE"]
        if park:
            w.parked, w.tracking = True, False
            w.alt_deg, w.az_deg = abs(w.cfg.lat), 0.0 if w.cfg.lat >= 0 else 180.0
            set_one(park_vec, "PARK")
            await park_vec.send_setVector(state="Ok", message="parked")
        else:
            w.tracking = track or w.tracking
        set_one(track_vec, "TRACK_ON" if w.tracking else "TRACK_OFF")
        await track_vec.send_setVector(state="Ok")
        await self.publish(state="Ok")

    async def publish(self, state: str | None = None) -> None:
        """Send the pointing and the mount's UTC (the sky moves under a mount that does not track)."""
        w = self.world
        dev = self.driver[self.name]
        eq, hz = dev["EQUATORIAL_EOD_COORD"], dev["HORIZONTAL_COORD"]
        side = dev["TELESCOPE_PIER_SIDE"]  # before the coordinates: a client reads it when a slew ends
        if switched_on(side) != self.pier_side():
            set_one(side, self.pier_side())
            await side.send_setVector(state="Ok")
        eq["RA"], eq["DEC"] = (w.ra_deg % 360.0) / 15.0, w.dec_deg
        hz["AZ"], hz["ALT"] = w.az_deg, w.alt_deg
        await eq.send_setVector(state=state)
        await hz.send_setVector(state=state)
        utc = dev["TIME_UTC"]
        utc["UTC"] = iso(w.clock.now())
        await utc.send_setVector()

