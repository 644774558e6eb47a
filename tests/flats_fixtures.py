"""A twilight sky on the simulator model with simulated time: a `SkyCamera` and a `Clock` for sky-flat tests.

Time only moves when the camera exposes (exposure + download overhead) or the run sleeps, so a whole
dusk takes a few seconds of CPU. The Sun altitude of each frame comes from the simulator's own
ephemeris, independent of the astropy track the controller uses.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest

from agent.flats.sky import SkyShot
from indi_sim import astro
from indi_sim.model import Optics, SimModel


class SimulatedClock:
    time_factor = 1.0

    def __init__(self, start: dt.datetime) -> None:
        self.t = start

    def now(self) -> dt.datetime:
        return self.t

    def sleep(self, seconds: float, abort: threading.Event | None = None) -> bool:
        if abort is not None and abort.is_set():
            return False
        self.t += dt.timedelta(seconds=max(0.0, seconds))
        return True


@dataclass
class Cloud:
    start: dt.datetime
    end: dt.datetime
    cover: float


@dataclass
class SimSky:
    """Sky flats through the model: tracking off (stars trail and drift), a new star field every frame."""

    model: SimModel
    clock: SimulatedClock
    lat: float
    lon: float
    overhead: float = 3.0
    clouds: list[Cloud] = field(default_factory=list)
    field_base: int = 0
    dec_deg: float = 60.0  # pointing opposite the Sun at ~75° altitude; sets how far stars trail
    frames: list[dict[str, object]] = field(default_factory=list)

    def cloud_at(self, when: dt.datetime) -> float:
        return max([c.cover for c in self.clouds if c.start <= when < c.end], default=0.0)

    def expose(self, filter_name: str, exposure: float) -> SkyShot:
        self.clock.sleep(self.overhead)  # filter move and the previous download
        start = self.clock.now()
        mid = start + dt.timedelta(seconds=exposure / 2)
        alt, _ = astro.sun_altaz(mid, self.lat, self.lon)
        cloud = self.cloud_at(mid)
        field_id = self.field_base + len(self.frames)
        data = self.model.render("flat", exposure, filter=filter_name, sun_altitude=alt, cloud_cover=cloud,
                                 field_id=field_id, tracking=False, dec_deg=self.dec_deg)
        self.frames.append({"filter": filter_name, "start": start, "exposure": exposure, "sun": alt,
                            "cloud": cloud, "stars": self.model.last_render.stars_rendered})
        self.clock.sleep(exposure)
        return SkyShot(data=data, start=start, exposure=exposure)

    def sun(self, when: dt.datetime) -> float:
        return astro.sun_altaz(when, self.lat, self.lon)[0]

    def pedestal(self) -> float:
        """The bias level as a master bias gives it (median of a bias frame)."""
        return float(np.median(self.model.render("bias", 0.0)))


@pytest.fixture
def sky_model() -> SimModel:
    return SimModel("small", seed=21, width=96, height=64, optics=Optics(star_density_per_deg2=1000.0))
