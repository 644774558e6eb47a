"""Mount capability: park/unpark, tracking, goto RA/Dec or alt-az (converted with the mount's site)."""

from __future__ import annotations

import contextlib
import datetime as dt

from agent.devices.client import IndiClient
from agent.errors import PropertyMissing


class Mount:
    def __init__(self, client: IndiClient, name: str, slew_timeout: float = 180.0) -> None:
        self.client = client
        self.name = name
        self.slew_timeout = slew_timeout

    def connect(self, timeout: float = 15.0) -> None:
        self.client.connect_device(self.name, timeout=timeout)
        self.client.wait_property(self.name, "EQUATORIAL_EOD_COORD", timeout=timeout)
        for prop in ("TELESCOPE_PARK", "TELESCOPE_TRACK_STATE"):
            with contextlib.suppress(PropertyMissing):
                self.client.wait_property(self.name, prop, timeout=5.0)

    def _switch_and_wait(self, prop: str, element: str, what: str) -> None:
        self.client.wait_property(self.name, prop, timeout=5.0)
        base = self.client.send_switch(self.name, prop, [element])
        self.client.wait_for(
            self.name,
            prop,
            lambda s: s.version > base and s.state in ("Ok", "Idle") and bool(s.values.get(element)),
            self.slew_timeout,
            f"{self.name} to {what}",
        )

    def park(self) -> None:
        self._switch_and_wait("TELESCOPE_PARK", "PARK", "park")

    def unpark(self) -> None:
        self._switch_and_wait("TELESCOPE_PARK", "UNPARK", "unpark")

    def parked(self) -> bool:
        return bool(self.client.get(self.name, "TELESCOPE_PARK").values.get("PARK"))

    def set_tracking(self, on: bool) -> None:
        if not self.client.has(self.name, "TELESCOPE_TRACK_STATE"):
            raise PropertyMissing(f"{self.name} has no TELESCOPE_TRACK_STATE; tracking cannot be switched")
        element = "TRACK_ON" if on else "TRACK_OFF"
        if self.client.get(self.name, "TELESCOPE_TRACK_STATE").values.get(element):
            return
        base = self.client.send_switch(self.name, "TELESCOPE_TRACK_STATE", [element])
        # Drivers report an active tracking state as Busy, so any non-Alert answer with the switch set counts.
        self.client.wait_for(
            self.name, "TELESCOPE_TRACK_STATE", lambda s: s.version > base and bool(s.values.get(element)),
            30.0, f"{self.name} to turn tracking {'on' if on else 'off'}",
        )

    def tracking(self) -> bool:
        return bool(self.client.get(self.name, "TELESCOPE_TRACK_STATE").values.get("TRACK_ON"))

    def radec(self) -> tuple[float, float]:
        """Current (RA hours, Dec degrees) of date."""
        values = self.client.get(self.name, "EQUATORIAL_EOD_COORD").values
        return float(values["RA"]), float(values["DEC"])

    def goto_radec(self, ra_hours: float, dec_deg: float, track: bool = True) -> None:
        """Slew to RA/Dec (JNow) and wait for the slew to finish."""
        if self.client.has(self.name, "ON_COORD_SET"):
            self.client.set_switch(self.name, "ON_COORD_SET", ["TRACK" if track else "SLEW"])
        base = self.client.send_number(self.name, "EQUATORIAL_EOD_COORD", {"RA": ra_hours, "DEC": dec_deg})
        self.client.wait_for(
            self.name,
            "EQUATORIAL_EOD_COORD",
            lambda s: s.version > base and s.state == "Ok",
            self.slew_timeout,
            f"{self.name} to slew to RA {ra_hours:.3f} h Dec {dec_deg:.2f}°",
        )

    def goto_j2000(self, ra_deg: float, dec_deg: float, when: dt.datetime | None = None) -> None:
        """Slew to J2000 coordinates: precessed to the equinox of date, which INDI mounts expect."""
        from agent import offline

        offline.configure()
        import astropy.units as u
        from astropy.coordinates import TETE, SkyCoord
        from astropy.time import Time

        obstime = Time(when or dt.datetime.now(dt.UTC))
        eod = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame="icrs").transform_to(TETE(obstime=obstime))
        self.goto_radec(float(eod.ra.hour), float(eod.dec.deg), track=True)

    def site(self) -> tuple[float, float, float]:
        values = self.client.get(self.name, "GEOGRAPHIC_COORD").values
        lon = float(values["LONG"])
        return float(values["LAT"]), lon - 360.0 if lon > 180 else lon, float(values.get("ELEV", 0.0))

    def goto_altaz(self, alt_deg: float, az_deg: float, when: dt.datetime | None = None, track: bool = False) -> None:
        """Point at an alt-az position: converted to RA/Dec of date for the mount's own site and time."""
        if self.client.has(self.name, "HORIZONTAL_COORD"):
            base = self.client.send_number(self.name, "HORIZONTAL_COORD", {"ALT": alt_deg, "AZ": az_deg})
            self.client.wait_for(
                self.name, "HORIZONTAL_COORD", lambda s: s.version > base and s.state == "Ok",
                self.slew_timeout, f"{self.name} to slew to alt {alt_deg:.1f}° az {az_deg:.1f}°",
            )
            return
        from agent import offline

        offline.configure()
        import astropy.units as u
        from astropy.coordinates import AltAz, EarthLocation, SkyCoord
        from astropy.time import Time

        lat, lon, elev = self.site()
        when = when or dt.datetime.now(dt.UTC)
        location = EarthLocation(lat=lat * u.deg, lon=lon * u.deg, height=elev * u.m)
        frame = AltAz(obstime=Time(when), location=location)
        coord = SkyCoord(alt=alt_deg * u.deg, az=az_deg * u.deg, frame=frame)
        from astropy.coordinates import TETE

        eod = coord.transform_to(TETE(obstime=Time(when)))
        self.goto_radec(float(eod.ra.hour), float(eod.dec.deg), track=track)
        if not track and self.client.has(self.name, "TELESCOPE_TRACK_STATE"):
            self.set_tracking(False)
