"""Campaigns (hours per target and filter) and the morning report of each night."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from agent.library.queries import campaigns, lights, nights
from agent.web import svg
from agent.web.site import NotFound, Site


def report_for(site: Site, night: str) -> dict[str, Any]:
    """The morning report of a night the library or the night's files know; else not found."""
    lib = site.need_library()
    if night not in nights.night_names(site.root, site.cache.get("lights", lambda: lights.lights_index(lib))):
        raise NotFound(f"no night {night}")
    return site.cache.get(f"report:{night}", lambda: nights.night_report(lib, site.root, night, site.settings.policy))


def register(app: FastAPI, site: Site) -> None:
    cache = site.cache

    @app.get("/campaigns", response_class=HTMLResponse, include_in_schema=False)
    def campaigns_page(request: Request) -> Response:
        lib = site.library()
        items = cache.get("campaigns", lambda: campaigns.campaigns(lib)) if lib else []
        plot = svg.bars([(c["target"], [(f["filter"], f["hours"]) for f in c["filters"]]) for c in items[:30]], unit=" h")
        return site.page(request, "campaigns.html", {"campaigns": items, "plot": plot})

    @app.get("/reports", response_class=HTMLResponse, include_in_schema=False)
    def reports_page(request: Request) -> Response:
        lib = site.library()
        index = cache.get("lights", lambda: lights.lights_index(lib)) if lib else None
        return site.page(request, "reports.html", {"nights": nights.night_names(site.root, index)})

    @app.get("/reports/{night}", response_class=HTMLResponse, include_in_schema=False)
    def report_page(request: Request, night: str) -> Response:
        report = report_for(site, night)
        captured_plot = svg.bars([("frames", sorted((k, float(v)) for k, v in report["captured"].items()))])
        lights_plot = svg.bars([("lights", sorted((k, float(v)) for k, v in report["lights"].items()))])
        return site.page(request, "report.html", {"r": report, "captured_plot": captured_plot,
                                                  "lights_plot": lights_plot})  # fmt: skip
