"""What every page and API route shares: the settings, the templates, this thread's read-only
library, the caches, and how a page or an error is answered (never a traceback)."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from agent.library.queries.readonly import ReadOnlyLibrary, open_readonly
from agent.status import read_status, status_stamp
from agent.web.caches import AnswerCache, PreviewCache
from agent.web.security import SESSION_COOKIE, WebSettings, bearer_valid, csrf_token, session_valid
from agent.web.templating import make_templates


class NotFound(Exception):
    """Anything a request names that the library does not know."""


def numeric_id(text: str) -> int:
    """A numeric id from a URL; anything else is simply not found."""
    if not text.isdigit() or len(text) > 12:
        raise NotFound("not found")
    return int(text)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


class Site:
    """The dashboard's shared state, handed to each area's routes."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.root = settings.data_dir
        self.templates = make_templates()
        self.cache = AnswerCache(self.root, self.need_library)
        self.previews = PreviewCache()
        self._local = threading.local()
        self._status: tuple[object, dict[str, Any] | None] = ((), None)

    def library(self) -> ReadOnlyLibrary | None:
        """This thread's read-only connection to the library, or None while there is none."""
        lib: ReadOnlyLibrary | None = getattr(self._local, "lib", None)
        if lib is None:
            lib = open_readonly(self.root)
            self._local.lib = lib
        return lib

    def status(self) -> dict[str, Any] | None:
        """The night's status file as a dict (read again only when it changed); None: no night.
        Shared by every request: read it, never change it."""
        stamp = status_stamp(self.root)
        seen, value = self._status
        if stamp is None or stamp != seen:
            found = read_status(self.root)
            value = found.to_dict() if found else None
            self._status = (stamp, value)
        return value

    def need_library(self) -> ReadOnlyLibrary:
        lib = self.library()
        if lib is None:
            raise NotFound("no library yet")
        return lib

    def authenticated(self, request: Request) -> bool:
        token = self.settings.token
        return bearer_valid(token, request.headers.get("authorization")) or session_valid(
            token, request.cookies.get(SESSION_COOKIE)
        )

    def page(self, request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        base = {
            "request": request,
            "signed_in": self.authenticated(request),
            "actions_enabled": self.settings.token is not None,
            "csrf": csrf_token(self.settings.token, cookie),
            "nav": request.url.path,
        }
        return self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status)

    def error(self, request: Request, status: int, message: str) -> Response:
        if is_api(request):
            return JSONResponse({"error": message}, status_code=status)
        return self.page(request, "error.html", {"status": status, "message": message}, status=status)
