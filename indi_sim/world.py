"""The observatory every simulated device shares: one model, one clock, and the state the devices
change (filter slot, cap, panel light, pointing, faults), so each device changes what the camera sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from indi_sim import astro
from indi_sim.config import SimClock, SimConfig, load_clock_state, parse_instant
from indi_sim.cooler import Cooler
from indi_sim.model import SimModel
from indi_sim.optics import DEFAULT_FILTERS, FilterSpec
from indi_sim.scenario import Timeline, load_scenario


@dataclass
class Observatory:
    """The shared world every device reads and changes."""

    cfg: SimConfig
    clock: SimClock
    model: SimModel
    cooler: Cooler
    filter_names: list[str]
    slot: int = 1
    cap_closed: bool = True
    light_on: bool = False
    brightness: float = 0.0
    light_leak: float = 0.0
    cloud_cover: float = 0.0
    ra_deg: float = 0.0
    dec_deg: float = 0.0
    alt_deg: float = 0.0
    az_deg: float = 0.0
    tracking: bool = False
    parked: bool = True
    faults: set[str] = field(default_factory=set)
    weather: Timeline | None = None  # the weather scenario; it drives the clouds when set

    def sun(self, when: datetime | None = None) -> tuple[float, float]:
        return astro.sun_altaz(when or self.clock.now(), self.cfg.lat, self.cfg.lon)

    def cloud_at(self, when: datetime | None = None) -> float:
        """Cloud cover over the telescope (0..1): the scenario's (rain = full cloud), else SIM_SKY's."""
        if self.weather is None:
            return self.cloud_cover
        return self.weather.sky_cloud(when or self.clock.now())

    def field_id(self) -> int:
        return (int(round(self.ra_deg * 2)) % 720) * 1000 + int(round(self.dec_deg * 2)) + 200

    def update_pointing(self, now: datetime) -> None:
        """Tracking keeps RA/Dec and moves alt/az; otherwise the sky drifts past a fixed alt/az."""
        if self.tracking and not self.parked:
            self.alt_deg, self.az_deg = astro.radec_to_altaz(self.ra_deg, self.dec_deg, now, self.cfg.lat, self.cfg.lon)
        else:
            self.ra_deg, self.dec_deg = astro.altaz_to_radec(self.alt_deg, self.az_deg, now, self.cfg.lat, self.cfg.lon)


def build_world(cfg: SimConfig) -> Observatory:
    """The observatory at the start of the session: cap closed, light off, mount parked at the pole."""
    start = parse_instant(cfg.start) if cfg.start else None
    weather = load_scenario(cfg.weather_scenario).timeline() if cfg.weather_scenario is not None else None
    slow = weather.scenario.slow_motion if weather is not None else None
    clock = SimClock(start, cfg.time_factor, transitions=weather.transitions if weather else (),
                     slow_factor=slow.factor if slow else None, slow_seconds=slow.seconds if slow else 0.0)
    saved = load_clock_state(cfg.clock_file, cfg.start) if cfg.clock_file else None
    if saved is not None:  # a restarted driver: simulated time went on while it was down
        clock.restore(saved)
    known = {f.name: f for f in DEFAULT_FILTERS}
    filters = tuple(known.get(n, FilterSpec(n, 0.5)) for n in cfg.filters)
    model = SimModel(cfg.preset, seed=cfg.seed, width=cfg.width, height=cfg.height, filters=filters,
                     cosmic_rays=cfg.cosmic_rays)
    spec = model.spec
    cooler = Cooler(cfg.ambient_c, spec.cooler_max_delta_c, spec.cooler_rate_c_per_min)
    world = Observatory(cfg=cfg, clock=clock, model=model, cooler=cooler, filter_names=list(cfg.filters),
                        light_leak=cfg.light_leak, cloud_cover=cfg.cloud_cover, faults=set(cfg.faults),
                        weather=weather)
    if weather is not None:
        world.cloud_cover = weather.sky_cloud(clock.now())
    cooler.weak = "FAULT_COOLER_WEAK" in world.faults
    # parked: pointing at the celestial pole
    world.alt_deg, world.az_deg = abs(cfg.lat), 0.0 if cfg.lat >= 0 else 180.0
    world.update_pointing(clock.now())
    return world
