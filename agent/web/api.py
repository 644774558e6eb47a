"""The JSON API under /api/: what the CLI's `--json` prints, at stable URLs for scripts and home
automation, documented by OpenAPI (/api/openapi.json, a list at /api)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from agent import control
from agent.library.queries import lights, masters
from agent.library.queries.rows import to_json
from agent.web import answers
from agent.web.site import NotFound, Site, numeric_id

CHUNK = 1 << 16


def json_chunks(head: str, texts: Iterable[str], tail: str) -> Iterator[str]:
    """`head`, the texts separated by commas, `tail`, in chunks of about CHUNK characters:
    thousands of rows are sent from their JSON texts, never built as one list of dicts."""
    parts = [head]
    size = 0
    for i, text in enumerate(texts):
        parts.append("," + text if i else text)
        size += len(text)
        if size >= CHUNK:
            yield "".join(parts)
            parts, size = [], 0
    parts.append(tail)
    yield "".join(parts)


def register(app: FastAPI, site: Site) -> None:
    root = site.root

    @app.get("/api/status", tags=["status"], summary="What the night is doing (the status file), and the library counts")
    def api_status() -> dict[str, Any]:
        lib = site.library()
        return {
            "status": site.status(),
            "library": lib.counts() if lib else None,
            "requests": [r.as_dict() for r in control.recent_requests(root, 20)],
        }

    @app.get("/api/plan", tags=["status"], summary="Tonight's plan as `obsagent plan --json` prints it")
    def api_plan() -> dict[str, Any]:
        plan: dict[str, Any] | None = (site.status() or {}).get("plan")
        if plan is None:
            raise NotFound("no plan yet: the night has not written one")
        return plan

    @app.get("/api/needs", tags=["library"], summary="As `obsagent library needs --json`",
             responses={200: {"content": {"application/json": {}}}})  # fmt: skip
    def api_needs() -> Response:
        lib = site.library()
        started = time.perf_counter()
        view = answers.needs(site).view if lib else None
        seconds = round(time.perf_counter() - started, 4)
        texts = view.texts() if view is not None else ()
        return StreamingResponse(json_chunks('{"needs":[', texts, f'],"seconds":{json.dumps(seconds)}}}'),
                                 media_type="application/json")  # fmt: skip

    @app.get("/api/masters", tags=["library"], summary="As `obsagent library masters --json` (all=1 for superseded too)")
    def api_masters(all: int = 0) -> list[dict[str, Any]]:
        lib = site.library()
        return answers.masters_table(site, bool(all)) if lib else []

    @app.get("/api/masters/{master_id}", tags=["library"], summary="One master with its source frames")
    def api_master(master_id: str) -> dict[str, Any]:
        detail = masters.master_detail(site.need_library(), numeric_id(master_id))
        if detail is None:
            raise NotFound(f"no master #{master_id}")
        return detail

    @app.get("/api/frames", tags=["library"], summary="As `obsagent library frames --json`")
    def api_frames(state: str = "", limit: int = 1000) -> list[dict[str, Any]]:
        lib = site.library()
        return lib.frames(state=state or None, limit=max(1, min(limit, 10000))) if lib else []

    @app.get("/api/groups", tags=["library"], summary="Accumulating frames by configuration, with progress",
             responses={200: {"content": {"application/json": {}}}})  # fmt: skip
    def api_groups() -> Response:
        found = answers.frame_groups(site) if site.library() else None
        texts = (found.text_of(i) for i in range(len(found))) if found is not None else ()
        return StreamingResponse(json_chunks("[", texts, "]"), media_type="application/json")

    @app.get("/api/lights", tags=["lights"], summary="As `obsagent library lights --json`, with night and target")
    def api_lights(night: str = "", target: str = "", filter: str = "", status: str = "",
                   limit: int = 1000) -> list[dict[str, Any]]:  # fmt: skip
        lib = site.library()
        if lib is None:
            return []
        index = answers.lights_index(site)
        found = index.select(night or None, target or None, filter or None, status or None)
        return [{k: v for k, v in index.row(i).items() if k != "chip"} for i in found[: max(1, min(limit, 50000))]]

    @app.get("/api/lights/{frame_id}", tags=["lights"], summary="One light: masters used, warnings")
    def api_light(frame_id: str) -> dict[str, Any]:
        detail = lights.light_detail(site.need_library(), numeric_id(frame_id))
        if detail is None:
            raise NotFound(f"no light #{frame_id}")
        return detail

    @app.get("/api/report", tags=["status"], summary="The morning report, as `obsagent report --json` (latest night)",
             responses={200: {"content": {"application/json": {}}}})  # fmt: skip
    def api_report(night: str = "") -> Response:
        site.need_library()
        names = answers.night_names(site)
        if not names:
            raise NotFound("no night has run yet with this data directory")
        found = answers.report(site, night or names[0])
        head = to_json(found.summary)[:-1] + ',"needs":['
        texts = found.needs.texts(found.remaining)
        return StreamingResponse(json_chunks(head, texts, "]}"), media_type="application/json")

    @app.get("/api/campaigns", tags=["lights"], summary="Lights and hours per target and filter")
    def api_campaigns() -> list[dict[str, Any]]:
        lib = site.library()
        return answers.campaign_table(site) if lib else []

    @app.get("/api/requests/{request_id}", tags=["actions"], summary="A queued action and its outcome")
    def api_request(request_id: str) -> dict[str, Any]:
        req = control.get_request(root, request_id)
        if req is None:
            raise NotFound("no such request")
        return req.as_dict()

    @app.get("/api", response_class=HTMLResponse, include_in_schema=False)
    def api_index(request: Request) -> Response:
        schema = app.openapi()
        routes = [(path, method.upper(), op.get("summary", ""))
                  for path, ops in schema["paths"].items() for method, op in ops.items()]  # fmt: skip
        return site.page(request, "api.html", {"routes": routes})
