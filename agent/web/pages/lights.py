"""Lights by night, target and filter with status chips, and one light's masters and warnings."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from agent.library.queries import files, lights
from agent.web import answers
from agent.web.site import NotFound, Site, numeric_id

PAGE_SIZE = 200


def register(app: FastAPI, site: Site) -> None:
    @app.get("/lights", response_class=HTMLResponse, include_in_schema=False)
    def lights_page(request: Request, night: str = "", target: str = "", filter: str = "", status: str = "",
                    page_no: int = 1) -> Response:  # fmt: skip
        lib = site.library()
        if lib is None:
            return site.page(request, "lights.html", {"empty": True})
        index = answers.lights_index(site)
        found = index.select(night or None, target or None, filter or None, status or None)
        start = max(page_no - 1, 0) * PAGE_SIZE
        return site.page(request, "lights.html", {
            "empty": False, "index": index, "summary": index.summary(found),
            "rows": index.rows(found[start:start + PAGE_SIZE]), "total": len(found), "page_no": page_no, "pages": max(1, -(-len(found) // PAGE_SIZE)),
            "sel": {"night": night, "target": target, "filter": filter, "status": status},
            "chips": lights.CHIPS,
        })  # fmt: skip

    @app.get("/lights/{frame_id}", response_class=HTMLResponse, include_in_schema=False)
    def light_page(request: Request, frame_id: str) -> Response:
        lib = site.need_library()
        detail = lights.light_detail(lib, numeric_id(frame_id))
        if detail is None:
            raise NotFound(f"no light #{frame_id}")
        detail["has_raw"] = files.known_file(lib, "raw", detail["id"]) is not None
        detail["has_calibrated"] = files.known_file(lib, "calibrated", detail["id"]) is not None
        return site.page(request, "light.html", {"l": detail})
