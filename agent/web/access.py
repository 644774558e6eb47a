"""Who may read and who may act, at the door: the guard on every request, signing in and out,
and the checks an action passes (token, session, same origin, CSRF)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from agent.web.security import SESSION_COOKIE, bearer_valid, csrf_valid, new_session, safe_next, session_valid
from agent.web.site import Site, is_api

PUBLIC_PATHS = ("/login", "/static/", "/logout")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
)


def register(app: FastAPI, site: Site) -> None:
    settings = site.settings

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        path = request.url.path
        if settings.reads_need_token and not path.startswith(PUBLIC_PATHS) and not site.authenticated(request):
            return unauthorized(site, request)
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        return site.page(request, "login.html", {"next": safe_next(next), "error": None})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        target = safe_next(str(form.get("next") or "/"))
        if not settings.token or not bearer_valid(settings.token, f"Bearer {form.get('token') or ''}"):
            return site.page(request, "login.html", {"next": target, "error": "that token is not right"}, status=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, new_session(settings.token), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=30 * 86400)  # fmt: skip
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response


def unauthorized(site: Site, request: Request) -> Response:
    if is_api(request) or request.url.path in ("/latest.jpg", "/events"):
        return JSONResponse(
            {"error": "a token is needed: send `Authorization: Bearer TOKEN`"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return site.page(request, "login.html", {"next": str(request.url.path), "error": None}, status=401)


async def action_allowed(site: Site, request: Request) -> tuple[bool, Response | None, dict[str, Any]]:
    """Whether this request may act, the refusal if not, and the form or JSON body it sent."""
    form: dict[str, Any] = {}
    if request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/")):
        form = dict(await request.form())
    elif request.headers.get("content-type", "").startswith("application/json"):
        try:
            raw = await request.json()
            form = raw if isinstance(raw, dict) else {}
        except ValueError:
            form = {}
    token = site.settings.token
    if token is None:
        return False, site.error(request, 403, "actions are off: start `obsagent web` with --token"), form
    if bearer_valid(token, request.headers.get("authorization")):
        return True, None, form
    cookie = request.cookies.get(SESSION_COOKIE)
    if not session_valid(token, cookie):
        return False, site.error(request, 401, "sign in with the token to do that"), form
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        return False, site.error(request, 403, "cross-site request refused"), form
    if not csrf_valid(token, cookie, form.get("csrf")):
        return False, site.error(request, 403, "the form has expired; reload the page and try again"), form
    return True, None, form
