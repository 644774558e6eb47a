"""The library's answers that pages and the API share, each under one name in the answer cache."""

from __future__ import annotations

from typing import Any

from agent.library.queries import campaigns, groups, lights, masters, needs_view, nights
from agent.web.site import NotFound, Site


def lights_index(site: Site) -> lights.LightsIndex:
    return site.cache.get("lights", lights.lights_index)


def needs_table(site: Site) -> list[dict[str, Any]]:
    policy = site.settings.policy
    return site.cache.get("needs", lambda lib: needs_view.needs_table(lib, policy))


def frame_groups(site: Site) -> list[dict[str, Any]]:
    policy = site.settings.policy
    return site.cache.get("groups", lambda lib: groups.frame_groups(lib, policy))


def masters_table(site: Site, include_superseded: bool) -> list[dict[str, Any]]:
    return site.cache.get(
        f"masters:{int(include_superseded)}",
        lambda lib: masters.masters_table(lib, include_superseded=include_superseded),
    )


def campaign_table(site: Site) -> list[dict[str, Any]]:
    index = lights_index(site)
    return site.cache.get("campaigns", lambda lib: campaigns.campaigns(index))


def night_names(site: Site) -> list[str]:
    return nights.night_names(site.root, lights_index(site) if site.library() else None)


def report(site: Site, night: str) -> dict[str, Any]:
    """The morning report of a night the library or the night's files know; else not found."""
    site.need_library()
    if night not in night_names(site):
        raise NotFound(f"no night {night}")
    policy = site.settings.policy
    index, needs = lights_index(site), needs_table(site)
    return site.cache.get(
        f"report:{night}", lambda lib: nights.night_report(lib, site.root, night, policy, index=index, needs=needs)
    )
