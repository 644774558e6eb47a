"""The calibration library's pages: masters, individual frames by group, and what is needed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from agent.library.queries import files, groups, masters
from agent.web import answers
from agent.web.preview import PreviewError
from agent.web.site import NotFound, Site, numeric_id

TABS = ("masters", "frames", "needs")
NEEDS_PAGE = 100
"""Needs per page, most urgent first (with 50,000 frames there can be thousands)."""
GROUPS_PAGE = 100
"""Groups of individual frames per page, fullest first."""


@dataclass(frozen=True)
class Paging:
    page_no: int
    pages: int
    start: int
    stop: int

    @classmethod
    def of(cls, total: int, page_no: int, size: int) -> Paging:
        pages = max(1, -(-total // size))
        page_no = min(max(page_no, 1), pages)
        start = (page_no - 1) * size
        return cls(page_no, pages, start, min(start + size, total))


def needs_panel(site: Site, page_no: int) -> Markup:
    """The Needs tab's table for one page, rendered once per answer and page."""
    answer = answers.needs(site)
    view = answer.view
    paging = Paging.of(len(view), page_no, NEEDS_PAGE)
    html = answer.pages.get(paging.page_no)
    if html is None:
        rows = list(view.dicts(range(paging.start, paging.stop)))
        html = site.templates.get_template("_needs.html").render(
            {"needs": rows, "need_counts": view.kinds, "total": len(view), "paging": paging}
        )
        answer.keep_page(paging.page_no, html)
    return Markup(html)


def register(app: FastAPI, site: Site) -> None:
    settings = site.settings

    @app.get("/library", response_class=HTMLResponse, include_in_schema=False)
    def library_page(request: Request, tab: str = "masters", all: int = 0, page_no: int = 1) -> Response:
        tab = tab if tab in TABS else "masters"
        lib = site.library()
        context: dict[str, Any] = {"tab": tab, "empty": lib is None, "show_all": bool(all)}
        if lib is not None:
            if tab == "masters":
                context["masters"] = answers.masters_table(site, bool(all))
            elif tab == "frames":
                found = answers.frame_groups(site)
                paging = Paging.of(len(found), page_no, GROUPS_PAGE)
                context["groups"] = list(found.rows(range(paging.start, paging.stop)))
                context["paging"] = paging
                context["total"] = len(found)
            else:
                context["needs_html"] = needs_panel(site, page_no)
        return site.page(request, "library.html", context)

    @app.get("/library/masters/{master_id}", response_class=HTMLResponse, include_in_schema=False)
    def master_page(request: Request, master_id: str) -> Response:
        lib = site.need_library()
        detail = masters.master_detail(lib, numeric_id(master_id))
        if detail is None:
            raise NotFound(f"no master #{master_id}")
        has_file = files.known_file(lib, "master", detail["id"]) is not None
        return site.page(request, "master.html", {"m": detail, "has_file": has_file})

    @app.get("/library/masters/{master_id}/preview.png", include_in_schema=False)
    def master_preview(master_id: str) -> Response:
        lib = site.need_library()
        path = files.known_file(lib, "master", numeric_id(master_id))
        if path is None:
            raise NotFound("no such master file")
        try:
            data, _ = site.previews.get(path, "PNG")
        except (PreviewError, OSError) as exc:
            raise NotFound("this master cannot be previewed") from exc
        return Response(data, media_type="image/png")

    @app.get("/library/groups", response_class=HTMLResponse, include_in_schema=False)
    def group_page(request: Request, ident: str = "") -> Response:
        lib = site.need_library()
        frames = groups.group_frames(lib, settings.policy, ident)
        if frames is None:
            raise NotFound("no such group of frames (it may have just become a master)")
        key = groups.key_from_ident(ident)
        return site.page(request, "_group_frames.html", {"frames": frames, "ident": ident,
                                                        "describe": key.describe() if key else ""})  # fmt: skip
