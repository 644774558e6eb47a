"""The dashboard and JSON API: server-rendered pages over a read-only view of the library.

It never drives hardware and never writes the library: actions become requests in the control
inbox (`agent.control`) that the agent polls. Live status comes from `<data>/status.json`,
which the night writes, pushed to open pages with server-sent events. Each area registers its
own routes (`access`, `pages.*`, `downloads`, `actions`, `api`) on one `Site`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent import __version__
from agent.web import access, actions, answers, api, downloads
from agent.web.memory import tune_heap
from agent.web.pages import library, lights, reports, tonight
from agent.web.security import WebSettings
from agent.web.site import NotFound, Site

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
HTTP_MESSAGES = {404: "not found", 405: "method not allowed"}
WORKER_THREADS = 4
"""Threads serving pages at once (anyio's default is 40): each holds a connection and its own C heap."""


def create_app(settings: WebSettings) -> FastAPI:
    settings.check()
    tune_heap()
    site = Site(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        answers.warm_up(site)
        yield
        site.cache.refresher.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="obsagent",
        version=__version__,
        description="The observatory agent's dashboard API: status, plan, needs, masters, frames, lights, "
        "report. Read-only; actions are POSTs that queue requests for the agent.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        debug=False,
        lifespan=lifespan,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    access.register(app, site)
    install_error_pages(app, site)
    for area in (tonight, library, lights, downloads, reports, actions, api):
        area.register(app, site)
    app.state.settings = settings
    app.state.site = site
    return app


def install_error_pages(app: FastAPI, site: Site) -> None:
    """Errors answer a short page, or JSON under /api/, and never a traceback: that goes to the log."""

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return site.error(request, 404, str(exc) or "not found")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return site.error(request, exc.status_code, HTTP_MESSAGES.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return site.error(request, 404, "not found")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("error serving %s", request.url.path)
        return site.error(request, 500, "something went wrong on the server; the agent's log has the details")


__all__ = ["create_app"]
