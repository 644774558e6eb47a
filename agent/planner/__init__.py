"""The night plan: sky-flat windows, the light schedule, the gaps, and its plot."""

from agent.planner.night_plan import (
    Block,
    EntryProgress,
    Gap,
    Interval,
    LightConfig,
    NeedsFn,
    NightPlan,
    Shortfall,
    SkyFlatWindow,
    SunEvent,
    Visibility,
)
from agent.planner.plan import default_night, plan_night
from agent.planner.schedule import default_gap_items

__all__ = [
    "Block",
    "EntryProgress",
    "Gap",
    "Interval",
    "LightConfig",
    "NeedsFn",
    "NightPlan",
    "Shortfall",
    "SkyFlatWindow",
    "SunEvent",
    "Visibility",
    "default_gap_items",
    "default_night",
    "plan_night",
]
