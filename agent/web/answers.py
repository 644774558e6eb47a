"""The library's answers that pages and the API share, each under one name in the answer cache.

The largest (needs, the lights index, groups of frames) are computed in a worker process once
the library is large (`answer_worker`); what is derived from an answer is kept with it, so it
is never older or newer than the answer it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.library.queries import campaigns, lights, masters, needs_view, nights
from agent.library.queries.readonly import ReadOnlyLibrary
from agent.library.queries.rows import JsonRows
from agent.library.store import DB_NAME
from agent.web.answer_worker import COMPUTE, compute_elsewhere
from agent.web.site import NotFound, Site

NEEDS_SECONDS = 120.0
"""The needs change with the time too (masters expire), but slowly."""
RENDERED_PAGES = 4
"""Pages of the Needs table kept rendered, per answer."""


@dataclass
class NeedsAnswer:
    """What is needed, and the pages of its table already rendered (they change only with it)."""

    view: needs_view.NeedsView
    pages: dict[int, str] = field(default_factory=dict)

    def keep_page(self, page_no: int, html: str) -> None:
        if len(self.pages) < RENDERED_PAGES:
            self.pages[page_no] = html


@dataclass
class LightsAnswer:
    """Every light's night, target and status, and the campaigns summed from them."""

    index: lights.LightsIndex
    campaigns: list[dict[str, Any]] | None = None


def large(site: Site) -> bool:
    """Whether the library is large enough for its largest answers to be worked out elsewhere."""
    try:
        return (site.root / DB_NAME).stat().st_size >= site.settings.large_library_bytes
    except OSError:
        return False


def _large_answer(site: Site, name: str) -> Callable[[ReadOnlyLibrary], Any]:
    def compute(lib: ReadOnlyLibrary) -> Any:
        if large(site):
            return compute_elsewhere(site.root, name, site.settings.policy)
        return COMPUTE[name](lib, site.settings.policy)

    return compute


def _needs(site: Site) -> Callable[[ReadOnlyLibrary], NeedsAnswer]:
    compute = _large_answer(site, "needs")
    return lambda lib: NeedsAnswer(compute(lib))


def _lights(site: Site) -> Callable[[ReadOnlyLibrary], LightsAnswer]:
    compute = _large_answer(site, "lights")
    return lambda lib: LightsAnswer(compute(lib))


def warm_up(site: Site) -> None:
    """Start on the slowest answers as the server starts, so the first visitor finds them."""
    if (site.root / DB_NAME).is_file():
        site.cache.prefetch("needs", _needs(site))
        site.cache.prefetch("lights", _lights(site))
        site.cache.prefetch("groups", _large_answer(site, "groups"))


def needs(site: Site) -> NeedsAnswer:
    return site.cache.get("needs", _needs(site), max_age=NEEDS_SECONDS)


def lights_index(site: Site) -> lights.LightsIndex:
    return site.cache.get("lights", _lights(site), max_age=None).index


def frame_groups(site: Site) -> JsonRows:
    """Accumulating frames by configuration, as JSON rows."""
    found: JsonRows = site.cache.get("groups", _large_answer(site, "groups"), max_age=None)
    return found


def campaign_table(site: Site) -> list[dict[str, Any]]:
    answer = site.cache.get("lights", _lights(site), max_age=None)
    if answer.campaigns is None:
        answer.campaigns = campaigns.campaigns(answer.index)
    return answer.campaigns


def masters_table(site: Site, include_superseded: bool) -> list[dict[str, Any]]:
    return site.cache.get(
        f"masters:{int(include_superseded)}",
        lambda lib: masters.masters_table(lib, include_superseded=include_superseded),
    )


def night_names(site: Site) -> list[str]:
    return nights.night_names(site.root, lights_index(site) if site.library() else None)


@dataclass(frozen=True)
class Report:
    """A night's morning report: what the night did (kept per night), and what is still needed
    (today's needs, taken from their own answer rather than kept twice)."""

    summary: dict[str, Any]
    needs: needs_view.NeedsView
    remaining: list[int]  # positions in `needs`


def report(site: Site, night: str) -> Report:
    """The morning report of a night the library or the night's files know; else not found."""
    site.need_library()
    if night not in night_names(site):
        raise NotFound(f"no night {night}")
    policy = site.settings.policy
    index = lights_index(site)
    summary = site.cache.get(
        f"report:{night}", lambda lib: nights.night_report(lib, site.root, night, policy, index=index, needs=[])
    )
    view = needs(site).view
    return Report({k: v for k, v in summary.items() if k != "needs"}, view, view.of_kinds(nights.REMAINING))
