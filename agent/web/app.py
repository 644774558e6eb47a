"""The dashboard and JSON API: server-rendered pages over a read-only view of the library.

It never drives hardware and never writes the library: actions become requests in the control
inbox (`agent.control`) that the agent polls. Live status comes from `<data>/status.json`,
which the night writes, pushed to open pages with server-sent events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent import __version__, control
from agent.library import queries
from agent.status import read_status, status_stamp
from agent.web import svg
from agent.web.preview import PreviewError, encode, read_preview
from agent.web.security import (
    SESSION_COOKIE,
    WebSettings,
    bearer_valid,
    csrf_token,
    csrf_valid,
    new_session,
    safe_next,
    session_valid,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
T = TypeVar("T")
CACHE_SECONDS = 30.0
PAGE_SIZE = 200
PUBLIC_PATHS = ("/login", "/static/", "/logout")


class NotFound(Exception):
    """Anything a request names that the library does not know."""


class _Cache:
    """Answers valid until the library changes (its files' stamps) or for CACHE_SECONDS."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.items: dict[str, tuple[tuple[int, ...], float, Any]] = {}

    def get(self, name: str, compute: Callable[[], T]) -> T:
        stamp = queries.library_stamp(self.root)
        with self.lock:
            hit = self.items.get(name)
            if hit is not None and hit[0] == stamp and time.monotonic() - hit[1] < CACHE_SECONDS:
                return hit[2]
        value = compute()
        with self.lock:
            self.items[name] = (stamp, time.monotonic(), value)
        return value


class _Previews:
    """Encoded previews by (path, mtime): a page reload does not re-read the FITS file."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.items: dict[tuple[str, int, str], tuple[bytes, dict[str, float]]] = {}

    def get(self, path: Path, fmt: str) -> tuple[bytes, dict[str, float]]:
        key = (str(path), path.stat().st_mtime_ns, fmt)
        with self.lock:
            if key in self.items:
                return self.items[key]
        preview = read_preview(path)
        value = (encode(preview, fmt), preview.stats)
        with self.lock:
            if len(self.items) >= self.size:
                self.items.pop(next(iter(self.items)))
            self.items[key] = value
        return value


def create_app(settings: WebSettings) -> FastAPI:
    settings.check()
    root = settings.data_dir
    app = FastAPI(
        title="obsagent",
        version=__version__,
        description="The observatory agent's dashboard API: status, plan, needs, masters, frames, lights, "
        "report. Read-only; actions are POSTs that queue requests for the agent.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        debug=False,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    env.filters["num"] = _num
    env.globals["version"] = __version__
    cache = _Cache(root)
    previews = _Previews()
    local = threading.local()

    def library() -> queries.ReadOnlyLibrary | None:
        lib: queries.ReadOnlyLibrary | None = getattr(local, "lib", None)
        if lib is None:
            lib = queries.open_readonly(root)
            local.lib = lib
        return lib

    def need_library() -> queries.ReadOnlyLibrary:
        lib = library()
        if lib is None:
            raise NotFound("no library yet")
        return lib

    # ---- who is asking ---------------------------------------------------------------------
    def authenticated(request: Request) -> bool:
        return bearer_valid(settings.token, request.headers.get("authorization")) or session_valid(
            settings.token, request.cookies.get(SESSION_COOKIE)
        )

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        path = request.url.path
        if settings.reads_need_token and not path.startswith(PUBLIC_PATHS) and not authenticated(request):
            return unauthorized(request)
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        )
        return response

    def unauthorized(request: Request) -> Response:
        if is_api(request) or request.url.path in ("/latest.jpg", "/events"):
            return JSONResponse(
                {"error": "a token is needed: send `Authorization: Bearer TOKEN`"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return page(request, "login.html", {"next": str(request.url.path), "error": None}, status=401)

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        base = {
            "request": request,
            "signed_in": authenticated(request),
            "actions_enabled": settings.token is not None,
            "csrf": csrf_token(settings.token, cookie),
            "nav": request.url.path,
        }
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)

    # ---- errors: never a traceback -----------------------------------------------------------
    def error(request: Request, status: int, message: str) -> Response:
        if is_api(request):
            return JSONResponse({"error": message}, status_code=status)
        return page(request, "error.html", {"status": status, "message": message}, status=status)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return error(request, 404, str(exc) or "not found")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "not found", 405: "method not allowed"}
        return error(request, exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return error(request, 404, "not found")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("error serving %s", request.url.path)
        return error(request, 500, "something went wrong on the server; the agent's log has the details")

    # ---- login -------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        return page(request, "login.html", {"next": safe_next(next), "error": None})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        target = safe_next(str(form.get("next") or "/"))
        if not settings.token or not bearer_valid(settings.token, f"Bearer {form.get('token') or ''}"):
            return page(request, "login.html", {"next": target, "error": "that token is not right"}, status=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, new_session(settings.token), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=30 * 86400)  # fmt: skip
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # ---- tonight -----------------------------------------------------------------------------
    def tonight_context() -> dict[str, Any]:
        status = read_status(root)
        data = status.to_dict() if status else None
        now = dt.datetime.now(dt.UTC)
        plan = (data or {}).get("plan") or None
        night = data.get("night") if data else None
        progress = queries.read_progress(root, night) if night else None
        stale = False
        if data:
            updated = svg._parse(data.get("updated"))
            stale = updated is None or (now - updated).total_seconds() > 600
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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def tonight(request: Request) -> Response:
        return page(request, "tonight.html", tonight_context())

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def live(request: Request) -> Response:
        return page(request, "_live.html", tonight_context())

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
                    html = templates.get_template("_live.html").render(
                        {**tonight_context(), "request": request, "csrf": csrf_token(
                            settings.token, request.cookies.get(SESSION_COOKIE)),
                         "actions_enabled": settings.token is not None, "signed_in": authenticated(request)}
                    )
                    yield "event: status\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"
                    quiet = 0.0
                elif quiet > 15:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                await asyncio.sleep(1.0)
                quiet += 1.0

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip

    def last_frame_file() -> Path | None:
        status = read_status(root)
        if status is None or not status.last_frame or not status.last_frame.get("path"):
            return None
        path = Path(str(status.last_frame["path"]))
        if not path.is_absolute():
            path = root / path
        # The status file is written by the night, yet only files inside the data folder are shown.
        try:
            path.resolve().relative_to(root.resolve())
        except ValueError:
            return None
        return queries.checked_file(path.resolve())

    @app.get("/latest.jpg", tags=["images"], summary="The last frame captured, stretched, as JPEG")
    def latest_jpg() -> Response:
        path = last_frame_file()
        if path is None:
            raise NotFound("no frame yet")
        try:
            data, _ = previews.get(path, "JPEG")
        except (PreviewError, OSError) as exc:
            raise NotFound("the last frame cannot be previewed") from exc
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    # ---- library -----------------------------------------------------------------------------
    @app.get("/library", response_class=HTMLResponse, include_in_schema=False)
    def library_page(request: Request, tab: str = "masters", all: int = 0) -> Response:
        tab = tab if tab in ("masters", "frames", "needs") else "masters"
        lib = library()
        context: dict[str, Any] = {"tab": tab, "empty": lib is None, "show_all": bool(all)}
        if lib is not None:
            if tab == "masters":
                context["masters"] = cache.get(f"masters:{all}", lambda: queries.masters_table(lib, include_superseded=bool(all)))
            elif tab == "frames":
                context["groups"] = cache.get("groups", lambda: queries.frame_groups(lib, settings.policy))
            else:
                items = cache.get("needs", lambda: queries.needs_table(lib, settings.policy))
                context["needs"] = items
                context["need_counts"] = _count(items, "kind")
        return page(request, "library.html", context)

    @app.get("/library/masters/{master_id}", response_class=HTMLResponse, include_in_schema=False)
    def master_page(request: Request, master_id: str) -> Response:
        lib = need_library()
        detail = queries.master_detail(lib, _id(master_id))
        if detail is None:
            raise NotFound(f"no master #{master_id}")
        return page(request, "master.html", {"m": detail, "has_file": queries.known_file(lib, "master", detail["id"]) is not None})

    @app.get("/library/masters/{master_id}/preview.png", include_in_schema=False)
    def master_preview(master_id: str) -> Response:
        lib = need_library()
        path = queries.known_file(lib, "master", _id(master_id))
        if path is None:
            raise NotFound("no such master file")
        try:
            data, _ = previews.get(path, "PNG")
        except (PreviewError, OSError) as exc:
            raise NotFound("this master cannot be previewed") from exc
        return Response(data, media_type="image/png")

    @app.get("/library/groups", response_class=HTMLResponse, include_in_schema=False)
    def group_page(request: Request, ident: str = "") -> Response:
        lib = need_library()
        frames = queries.group_frames(lib, settings.policy, ident)
        if frames is None:
            raise NotFound("no such group of frames (it may have just become a master)")
        key = queries.key_from_ident(ident)
        return page(request, "_group_frames.html", {"frames": frames, "ident": ident,
                                                   "describe": key.describe() if key else ""})  # fmt: skip

    # ---- lights ------------------------------------------------------------------------------
    @app.get("/lights", response_class=HTMLResponse, include_in_schema=False)
    def lights_page(request: Request, night: str = "", target: str = "", filter: str = "", status: str = "",
                    page_no: int = 1) -> Response:  # fmt: skip
        lib = library()
        if lib is None:
            return page(request, "lights.html", {"empty": True})
        index = cache.get("lights", lambda: queries.lights_index(lib))
        rows = index.select(night or None, target or None, filter or None, status or None)
        start = max(page_no - 1, 0) * PAGE_SIZE
        return page(request, "lights.html", {
            "empty": False, "index": index, "summary": index.summary(rows), "rows": rows[start:start + PAGE_SIZE],
            "total": len(rows), "page_no": page_no, "pages": max(1, -(-len(rows) // PAGE_SIZE)),
            "sel": {"night": night, "target": target, "filter": filter, "status": status},
            "chips": queries.CHIPS,
        })  # fmt: skip

    @app.get("/lights/{frame_id}", response_class=HTMLResponse, include_in_schema=False)
    def light_page(request: Request, frame_id: str) -> Response:
        lib = need_library()
        detail = queries.light_detail(lib, _id(frame_id))
        if detail is None:
            raise NotFound(f"no light #{frame_id}")
        detail["has_raw"] = queries.known_file(lib, "raw", detail["id"]) is not None
        detail["has_calibrated"] = queries.known_file(lib, "calibrated", detail["id"]) is not None
        return page(request, "light.html", {"l": detail})

    # ---- downloads: ids only, files the library knows ------------------------------------------
    @app.get("/download/{kind}/{ident}", include_in_schema=False)
    def download(kind: str, ident: str) -> Response:
        if kind not in ("raw", "calibrated", "master"):
            raise NotFound("not found")
        lib = need_library()
        path = queries.known_file(lib, kind, _id(ident))
        if path is None:
            raise NotFound("not found")
        return _file_response(path)

    @app.get("/download/zip", include_in_schema=False)
    def download_zip(night: str = "", target: str = "") -> Response:
        if not night and not target:
            raise NotFound("name a night or a target")
        lib = need_library()
        files = queries.light_files(lib, night or None, target or None)
        if not files:
            raise NotFound("no lights for that night or target")
        name = "lights-" + "-".join(_slug(p) for p in (night, target) if p) + ".zip"
        return StreamingResponse(_zip_stream(files), media_type="application/zip",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip

    # ---- campaigns and reports -----------------------------------------------------------------
    @app.get("/campaigns", response_class=HTMLResponse, include_in_schema=False)
    def campaigns_page(request: Request) -> Response:
        lib = library()
        items = cache.get("campaigns", lambda: queries.campaigns(lib)) if lib else []
        plot = svg.bars([(c["target"], [(f["filter"], f["hours"]) for f in c["filters"]]) for c in items[:30]], unit=" h")
        return page(request, "campaigns.html", {"campaigns": items, "plot": plot})

    @app.get("/reports", response_class=HTMLResponse, include_in_schema=False)
    def reports_page(request: Request) -> Response:
        lib = library()
        index = cache.get("lights", lambda: queries.lights_index(lib)) if lib else None
        return page(request, "reports.html", {"nights": queries.night_names(root, index)})

    def report_for(night: str) -> dict[str, Any]:
        lib = need_library()
        if night not in queries.night_names(root, cache.get("lights", lambda: queries.lights_index(lib))):
            raise NotFound(f"no night {night}")
        return cache.get(f"report:{night}", lambda: queries.night_report(lib, root, night, settings.policy))

    @app.get("/reports/{night}", response_class=HTMLResponse, include_in_schema=False)
    def report_page(request: Request, night: str) -> Response:
        report = report_for(night)
        captured_plot = svg.bars([("frames", sorted((k, float(v)) for k, v in report["captured"].items()))])
        lights_plot = svg.bars([("lights", sorted((k, float(v)) for k, v in report["lights"].items()))])
        return page(request, "report.html", {"r": report, "captured_plot": captured_plot, "lights_plot": lights_plot})

    # ---- actions: POST, token, CSRF; they only queue requests ------------------------------------
    async def action_allowed(request: Request) -> tuple[bool, Response | None, dict[str, Any]]:
        form: dict[str, Any] = {}
        if request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/")):
            form = dict(await request.form())
        elif request.headers.get("content-type", "").startswith("application/json"):
            try:
                raw = await request.json()
                form = raw if isinstance(raw, dict) else {}
            except ValueError:
                form = {}
        if settings.token is None:
            return False, error(request, 403, "actions are off: start `obsagent web` with --token"), form
        if bearer_valid(settings.token, request.headers.get("authorization")):
            return True, None, form
        cookie = request.cookies.get(SESSION_COOKIE)
        if not session_valid(settings.token, cookie):
            return False, error(request, 401, "sign in with the token to do that"), form
        origin = request.headers.get("origin")
        if origin and origin.split("://", 1)[-1] != request.headers.get("host", ""):
            return False, error(request, 403, "cross-site request refused"), form
        if not csrf_valid(settings.token, cookie, form.get("csrf")):
            return False, error(request, 403, "the form has expired; reload the page and try again"), form
        return True, None, form

    def queued(request: Request, req: control.ControlRequest) -> Response:
        if is_api(request):
            return JSONResponse(req.as_dict(), status_code=202)
        return page(request, "queued.html", {"req": req}, status=202)

    def who(request: Request) -> str:
        return f"web {request.client.host if request.client else '?'}"

    async def simple_action(request: Request, action: str) -> Response:
        ok, refusal, _ = await action_allowed(request)
        if not ok:
            assert refusal is not None
            return refusal
        return queued(request, control.submit(root, action, {}, who(request)))

    for name in ("pause", "resume", "park"):

        def make(action: str) -> Callable[[Request], Any]:
            async def handler(request: Request) -> Response:
                return await simple_action(request, action)

            handler.__name__ = f"{action}_night"
            handler.__doc__ = f"Ask the agent to {action} (queued in the control inbox; needs the token)."
            return handler

        app.post(f"/actions/{name}", include_in_schema=False)(make(name))
        app.post(f"/api/actions/{name}", tags=["actions"], status_code=202)(make(name))

    async def build_master(request: Request) -> Response:
        ok, refusal, form = await action_allowed(request)
        if not ok:
            assert refusal is not None
            return refusal
        ident = str(form.get("group") or "")
        key = queries.key_from_ident(ident)
        lib = need_library()
        if key is None or queries.group_frames(lib, settings.policy, ident) is None:
            raise NotFound("no such group of frames")
        params = {"frame_type": key.frame_type.value, "key": key.as_dict(), "forced": True}
        return queued(request, control.submit(root, "build_master", params, who(request)))

    async def recalibrate(request: Request) -> Response:
        ok, refusal, form = await action_allowed(request)
        if not ok:
            assert refusal is not None
            return refusal
        frame_id = _id(str(form.get("frame_id") or request.path_params.get("frame_id") or ""))
        if queries.light_detail(need_library(), frame_id) is None:
            raise NotFound(f"no light #{frame_id}")
        return queued(request, control.submit(root, "recalibrate_light", {"frame_id": frame_id}, who(request)))

    app.post("/actions/build-master", include_in_schema=False)(build_master)
    app.post("/api/actions/build-master", tags=["actions"], status_code=202,
             summary="Build a master from a group now, below the threshold (forced); body: {group}")(build_master)  # fmt: skip
    app.post("/actions/recalibrate/{frame_id}", include_in_schema=False)(recalibrate)
    app.post("/api/actions/recalibrate/{frame_id}", tags=["actions"], status_code=202,
             summary="Calibrate a light again with the best masters now")(recalibrate)  # fmt: skip

    # ---- JSON API ------------------------------------------------------------------------------
    @app.get("/api/status", tags=["status"], summary="What the night is doing (the status file), and the library counts")
    def api_status() -> dict[str, Any]:
        status = read_status(root)
        lib = library()
        return {
            "status": status.to_dict() if status else None,
            "library": lib.counts() if lib else None,
            "requests": [r.as_dict() for r in control.recent_requests(root, 20)],
        }

    @app.get("/api/plan", tags=["status"], summary="Tonight's plan as `obsagent plan --json` prints it")
    def api_plan() -> dict[str, Any]:
        status = read_status(root)
        if status is None or status.plan is None:
            raise NotFound("no plan yet: the night has not written one")
        return status.plan

    @app.get("/api/needs", tags=["library"], summary="As `obsagent library needs --json`")
    def api_needs() -> dict[str, Any]:
        lib = library()
        started = time.perf_counter()
        items = cache.get("needs", lambda: queries.needs_table(lib, settings.policy)) if lib else []
        return {"needs": items, "seconds": round(time.perf_counter() - started, 4)}

    @app.get("/api/masters", tags=["library"], summary="As `obsagent library masters --json` (all=1 for superseded too)")
    def api_masters(all: int = 0) -> list[dict[str, Any]]:
        lib = library()
        return queries.masters_table(lib, include_superseded=bool(all)) if lib else []

    @app.get("/api/masters/{master_id}", tags=["library"], summary="One master with its source frames")
    def api_master(master_id: str) -> dict[str, Any]:
        detail = queries.master_detail(need_library(), _id(master_id))
        if detail is None:
            raise NotFound(f"no master #{master_id}")
        return detail

    @app.get("/api/frames", tags=["library"], summary="As `obsagent library frames --json`")
    def api_frames(state: str = "", limit: int = 1000) -> list[dict[str, Any]]:
        lib = library()
        return lib.frames(state=state or None, limit=max(1, min(limit, 10000))) if lib else []

    @app.get("/api/groups", tags=["library"], summary="Accumulating frames by configuration, with progress")
    def api_groups() -> list[dict[str, Any]]:
        lib = library()
        return cache.get("groups", lambda: queries.frame_groups(lib, settings.policy)) if lib else []

    @app.get("/api/lights", tags=["lights"], summary="As `obsagent library lights --json`, with night and target")
    def api_lights(night: str = "", target: str = "", filter: str = "", status: str = "",
                   limit: int = 1000) -> list[dict[str, Any]]:  # fmt: skip
        lib = library()
        if lib is None:
            return []
        index = cache.get("lights", lambda: queries.lights_index(lib))
        rows = index.select(night or None, target or None, filter or None, status or None)[: max(1, min(limit, 50000))]
        return [{k: v for k, v in r.items() if k != "chip"} for r in rows]

    @app.get("/api/lights/{frame_id}", tags=["lights"], summary="One light: masters used, warnings")
    def api_light(frame_id: str) -> dict[str, Any]:
        detail = queries.light_detail(need_library(), _id(frame_id))
        if detail is None:
            raise NotFound(f"no light #{frame_id}")
        return detail

    @app.get("/api/report", tags=["status"], summary="The morning report, as `obsagent report --json` (latest night)")
    def api_report(night: str = "") -> dict[str, Any]:
        lib = need_library()
        names = queries.night_names(root, cache.get("lights", lambda: queries.lights_index(lib)))
        if not names:
            raise NotFound("no night has run yet with this data directory")
        return report_for(night or names[0])

    @app.get("/api/campaigns", tags=["lights"], summary="Lights and hours per target and filter")
    def api_campaigns() -> list[dict[str, Any]]:
        lib = library()
        return cache.get("campaigns", lambda: queries.campaigns(lib)) if lib else []

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
        return page(request, "api.html", {"routes": routes})

    app.state.settings = settings
    return app


# ---- helpers -------------------------------------------------------------------------------------


def _id(text: str) -> int:
    """A numeric id from a URL; anything else is simply not found."""
    if not text.isdigit() or len(text) > 12:
        raise NotFound("not found")
    return int(text)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60]


def _file_response(path: Path) -> Response:
    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 16):
                yield block

    return StreamingResponse(chunks(), media_type="application/fits", headers={
        "Content-Disposition": f'attachment; filename="{_slug(path.name)}"',
        "Content-Length": str(path.stat().st_size),
    })  # fmt: skip


class _ZipBuffer(io.RawIOBase):
    """A write-only sink that hands out what zipfile wrote so far (streamed zips)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.chunks.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def _zip_stream(files: list[tuple[str, Path]]) -> Iterator[bytes]:
    sink = _ZipBuffer()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, path in files:
            with open(path, "rb") as src, zf.open(name, "w", force_zip64=True) as dst:
                while block := src.read(1 << 16):
                    dst.write(block)
                    yield sink.take()
    yield sink.take()


def _count(items: list[dict[str, Any]], field: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[str(i[field])] = out.get(str(i[field]), 0) + 1
    return out


def _when(ts: Any) -> str:
    if ts is None or ts == "":
        return "—"
    if isinstance(ts, str):
        moment = svg._parse(ts)
        return ts if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(ts: Any) -> str:
    if ts is None:
        return "—"
    if isinstance(ts, str):
        moment = svg._parse(ts)
        if moment is None:
            return ts
        seconds = (dt.datetime.now(dt.UTC) - moment).total_seconds()
    else:
        seconds = time.time() - float(ts)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _num(v: Any, digits: int = 1) -> str:
    if v is None or v == "":
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}".rstrip("0").rstrip(".") if v != int(v) else f"{v:g}"
    return str(v)


__all__ = ["create_app"]
