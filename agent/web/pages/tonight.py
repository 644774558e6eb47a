"""Tonight: state, activity, the plan's timeline, cooler and weather, the last frame; kept live by
server-sent events whenever the status file or the control inbox changes."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from agent import control
from agent.library.queries.files import checked_file
from agent.library.queries.nights import read_progress
from agent.status import status_stamp
from agent.web import svg
from agent.web.preview import PreviewError
from agent.web.security import SESSION_COOKIE, csrf_token
from agent.web.site import NotFound, Site

STALE_SECONDS = 600


def tonight_context(root: Path, data: dict[str, Any] | None) -> dict[str, Any]:
    """What the Tonight page shows, from the status file (`data`) and the night's progress file."""
    now = dt.datetime.now(dt.UTC)
    plan = (data or {}).get("plan") or None
    night = data.get("night") if data else None
    progress = read_progress(root, night) if night else None
    stale = False
    if data:
        updated = svg._parse(data.get("updated"))
        stale = updated is None or (now - updated).total_seconds() > STALE_SECONDS
    return {
        "status": data,
        "stale": stale,
        "progress": progress,
        "timeline": svg.timeline(plan, now) if plan else "",
        "cooler_plot": svg.cooler_plot((data or {}).get("cooler") or []),
        "weather_plot": svg.weather_strip((data or {}).get("weather") or []),
        "last_frame": (data or {}).get("last_frame"),
        "requests": control.recent_requests(root, 8),
        "now": now,
    }


def last_frame_file(root: Path, status: dict[str, Any] | None) -> Path | None:
    last = (status or {}).get("last_frame") or {}
    if not last.get("path"):
        return None
    path = Path(str(last["path"]))
    if not path.is_absolute():
        path = root / path
    # The status file is written by the night, yet only files inside the data folder are shown.
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return checked_file(path.resolve())


def register(app: FastAPI, site: Site) -> None:
    root = site.root
    settings = site.settings

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def tonight(request: Request) -> Response:
        return site.page(request, "tonight.html", tonight_context(root, site.status()))

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def live(request: Request) -> Response:
        return site.page(request, "_live.html", tonight_context(root, site.status()))

    @app.get("/events", include_in_schema=False)
    async def events(request: Request) -> Response:
        """Server-sent events: the live panel, re-rendered whenever the status file changes."""

        async def stream() -> AsyncIterator[str]:
            last: object = ()
            quiet = 0.0
            yield "retry: 3000\n\n"
            while not await request.is_disconnected():
                newest = control.recent_requests(root, 1)
                stamp = (status_stamp(root), newest[0].id if newest else None, newest[0].done_at if newest else None)
                if stamp != last:
                    last = stamp
                    html = site.templates.get_template("_live.html").render(
                        {**tonight_context(root, site.status()), "request": request, "csrf": csrf_token(
                            settings.token, request.cookies.get(SESSION_COOKIE)),
                         "actions_enabled": settings.token is not None, "signed_in": site.authenticated(request)}
                    )  # fmt: skip
                    yield "event: status\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"
                    quiet = 0.0
                elif quiet > 15:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                await asyncio.sleep(1.0)
                quiet += 1.0

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip

    @app.get("/latest.jpg", tags=["images"], summary="The last frame captured, stretched, as JPEG")
    def latest_jpg() -> Response:
        path = last_frame_file(root, site.status())
        if path is None:
            raise NotFound("no frame yet")
        try:
            data, _ = site.previews.get(path, "JPEG")
        except (PreviewError, OSError) as exc:
            raise NotFound("the last frame cannot be previewed") from exc
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})
