"""The calibration library's pages: masters, individual frames by group, and what is needed."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from agent.library.queries import files, groups, masters
from agent.web import answers
from agent.web.preview import PreviewError
from agent.web.site import NotFound, Site, numeric_id

TABS = ("masters", "frames", "needs")


def count_by(items: list[dict[str, Any]], field: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[str(i[field])] = out.get(str(i[field]), 0) + 1
    return out


def register(app: FastAPI, site: Site) -> None:
    settings = site.settings

    @app.get("/library", response_class=HTMLResponse, include_in_schema=False)
    def library_page(request: Request, tab: str = "masters", all: int = 0) -> Response:
        tab = tab if tab in TABS else "masters"
        lib = site.library()
        context: dict[str, Any] = {"tab": tab, "empty": lib is None, "show_all": bool(all)}
        if lib is not None:
            if tab == "masters":
                context["masters"] = answers.masters_table(site, bool(all))
            elif tab == "frames":
                context["groups"] = answers.frame_groups(site)
            else:
                items = answers.needs_table(site)
                context["needs"] = items
                context["need_counts"] = count_by(items, "kind")
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
