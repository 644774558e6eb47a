"""Campaigns (hours per target and filter) and the morning report of each night."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from agent.library.queries.rows import Picked
from agent.web import answers, svg
from agent.web.site import Site


def register(app: FastAPI, site: Site) -> None:
    @app.get("/campaigns", response_class=HTMLResponse, include_in_schema=False)
    def campaigns_page(request: Request) -> Response:
        items = answers.campaign_table(site) if site.library() else []
        plot = svg.bars([(c["target"], [(f["filter"], f["hours"]) for f in c["filters"]]) for c in items[:30]], unit=" h")
        return site.page(request, "campaigns.html", {"campaigns": items, "plot": plot})

    @app.get("/reports", response_class=HTMLResponse, include_in_schema=False)
    def reports_page(request: Request) -> Response:
        return site.page(request, "reports.html", {"nights": answers.night_names(site)})

    @app.get("/reports/{night}", response_class=HTMLResponse, include_in_schema=False)
    def report_page(request: Request, night: str) -> Response:
        found = answers.report(site, night)
        report = {**found.summary, "needs": Picked(found.needs.rows, found.remaining)}
        captured_plot = svg.bars([("frames", sorted((k, float(v)) for k, v in report["captured"].items()))])
        lights_plot = svg.bars([("lights", sorted((k, float(v)) for k, v in report["lights"].items()))])
        return site.page(request, "report.html", {"r": report, "captured_plot": captured_plot,
                                                  "lights_plot": lights_plot})  # fmt: skip
