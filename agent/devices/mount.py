"""Mount capability: park/unpark, tracking, goto RA/Dec or alt-az, and the site and time it works with.

A mount only points right if it knows where and when it is: INDI telescopes (inditelescope.cpp,
EQMod, OnStep) take GEOGRAPHIC_COORD (LAT, LONG 0..360 east, ELEV) and TIME_UTC (UTC ISO text,
OFFSET hours); the stock simulator starts at 0°, 0°. `push_site_and_time` sends ours and checks
the mount took them. `pointing_header` gives a light its RA/DEC/OBJCTRA/OBJCTDEC/PIERSIDE/AIRMASS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable

import numpy as np

from agent.devices.client import IndiClient
from agent.errors import IndiError, PropertyMissing


class SlewInterrupted(IndiError):
    """A slew was stopped because its owner asked (bad weather): the mount is told to stop."""


class Mount:
    def __init__(self, client: IndiClient, name: str, slew_timeout: float = 180.0) -> None:
        self.client = client
        self.name = name
        self.slew_timeout = slew_timeout
        self.interrupt: Callable[[], bool] | None = None  # checked while a slew runs (unsafe weather)

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

    def start_park(self) -> int:
        """Command the park and return at once (the version to wait on): closing up for bad weather
        moves the cap and the mount at the same time."""
        self.client.wait_property(self.name, "TELESCOPE_PARK", timeout=5.0)
        return self.client.send_switch(self.name, "TELESCOPE_PARK", ["PARK"])

    def wait_parked(self, base: int) -> None:
        self.client.wait_for(
            self.name,
            "TELESCOPE_PARK",
            lambda s: s.version > base and s.state in ("Ok", "Idle") and bool(s.values.get("PARK")),
            self.slew_timeout,
            f"{self.name} to park",
        )

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
        self._wait_slew("EQUATORIAL_EOD_COORD", base, f"{self.name} to slew to RA {ra_hours:.3f} h Dec {dec_deg:.2f}°")

    def _wait_slew(self, prop: str, base: int, what: str) -> None:
        """Wait for the slew; when `interrupt` says so, stop the mount and raise `SlewInterrupted`."""
        stop = self.interrupt
        self.client.wait_for(
            self.name, prop, lambda s: (stop is not None and stop()) or (s.version > base and s.state == "Ok"),
            self.slew_timeout, what,
        )
        if stop is not None and stop():
            if self.client.has(self.name, "TELESCOPE_ABORT_MOTION"):
                with contextlib.suppress(IndiError):
                    self.client.send_switch(self.name, "TELESCOPE_ABORT_MOTION", ["ABORT"])
            raise SlewInterrupted(f"{what}: stopped")

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

    def set_site(self, lat: float, lon: float, elevation: float = 0.0) -> None:
        """Send the site (longitude east, stored 0..360 as INDI does) and verify it."""
        if not self.client.has(self.name, "GEOGRAPHIC_COORD"):
            raise PropertyMissing(f"{self.name} has no GEOGRAPHIC_COORD; set the site in its hand controller")
        values = {"LAT": lat, "LONG": lon % 360.0}
        if "ELEV" in self.client.get(self.name, "GEOGRAPHIC_COORD").values:
            values["ELEV"] = elevation
        self.client.set_number(self.name, "GEOGRAPHIC_COORD", values, timeout=30.0)
        got_lat, got_lon, _ = self.site()
        if abs(got_lat - lat) > 0.01 or abs((got_lon - lon + 180) % 360 - 180) > 0.01:
            raise PropertyMissing(f"{self.name} did not take the site {lat:.4f}, {lon:.4f} (reports {got_lat}, {got_lon})")

    def set_time(self, when: dt.datetime | None = None) -> None:
        """Send the UTC time (TIME_UTC: UTC text, OFFSET hours); `when` defaults to the system clock."""
        if not self.client.has(self.name, "TIME_UTC"):
            raise PropertyMissing(f"{self.name} has no TIME_UTC; set its clock in its hand controller")
        when = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        values = {"UTC": when.strftime("%Y-%m-%dT%H:%M:%S")}
        if "OFFSET" in self.client.get(self.name, "TIME_UTC").values:
            values["OFFSET"] = "0"
        self.client.set_text(self.name, "TIME_UTC", values, timeout=30.0)

    def push_site_and_time(
        self, lat: float, lon: float, elevation: float = 0.0, when: dt.datetime | None = None
    ) -> list[str]:
        """Give the mount our site and time; what could not be set is returned as warnings."""
        warnings = []
        for action in (lambda: self.set_site(lat, lon, elevation), lambda: self.set_time(when)):
            try:
                action()
            except IndiError as exc:
                warnings.append(str(exc))
        return warnings

    def pier_side(self) -> str | None:
        """"EAST"/"WEST" from TELESCOPE_PIER_SIDE (PIER_EAST/PIER_WEST), None when unknown."""
        if not self.client.has(self.name, "TELESCOPE_PIER_SIDE"):
            return None
        values = self.client.get(self.name, "TELESCOPE_PIER_SIDE").values
        for element, side in (("PIER_EAST", "EAST"), ("PIER_WEST", "WEST")):
            if values.get(element):
                return side
        return None

    def pointing_header(self, when: dt.datetime | None = None) -> dict[str, object]:
        """FITS cards for a light: RA/DEC (J2000 deg), OBJCTRA/OBJCTDEC (sexagesimal), PIERSIDE, AIRMASS."""
        from agent import offline

        offline.configure()
        import astropy.units as u
        from astropy.coordinates import ICRS, TETE, AltAz, EarthLocation, SkyCoord
        from astropy.time import Time

        ra_h, dec = self.radec()
        obstime = Time(when or dt.datetime.now(dt.UTC))
        j2000 = SkyCoord(ra=ra_h * u.hourangle, dec=dec * u.deg, frame=TETE(obstime=obstime)).transform_to(ICRS())
        cards: dict[str, object] = {
            "RA": (round(float(j2000.ra.deg), 6), "J2000 right ascension of the pointing [deg]"),
            "DEC": (round(float(j2000.dec.deg), 6), "J2000 declination of the pointing [deg]"),
            "OBJCTRA": (str(j2000.ra.to_string(unit=u.hourangle, sep=" ", precision=2, pad=True)), "J2000 RA [h m s]"),
            "OBJCTDEC": (str(j2000.dec.to_string(sep=" ", precision=1, alwayssign=True, pad=True)), "J2000 Dec [d m s]"),
        }
        side = self.pier_side()
        if side is not None:
            cards["PIERSIDE"] = (side, "side of the pier the telescope is on")
        if self.client.has(self.name, "GEOGRAPHIC_COORD"):
            lat, lon, elev = self.site()
            where = EarthLocation(lat=lat * u.deg, lon=lon * u.deg, height=elev * u.m)
            alt = float(j2000.transform_to(AltAz(obstime=obstime, location=where)).alt.deg)
            if alt > 1.0:
                cards["AIRMASS"] = (round(1.0 / float(np.sin(np.radians(alt + 244.0 / (165.0 + 47.0 * alt**1.1)))), 4),
                                    "airmass at the start (Pickering 2002)")
        return cards

    def site(self) -> tuple[float, float, float]:
        values = self.client.get(self.name, "GEOGRAPHIC_COORD").values
        lon = float(values["LONG"])
        return float(values["LAT"]), lon - 360.0 if lon > 180 else lon, float(values.get("ELEV", 0.0))

    def goto_altaz(self, alt_deg: float, az_deg: float, when: dt.datetime | None = None, track: bool = False) -> None:
        """Point at an alt-az position: converted to RA/Dec of date for the mount's own site and time."""
        if self.client.has(self.name, "HORIZONTAL_COORD"):
            base = self.client.send_number(self.name, "HORIZONTAL_COORD", {"ALT": alt_deg, "AZ": az_deg})
            self._wait_slew("HORIZONTAL_COORD", base, f"{self.name} to slew to alt {alt_deg:.1f}° az {az_deg:.1f}°")
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
