"""Actions: POSTs behind the token (and CSRF for browsers) that only queue a request in the
control inbox; the agent carries it out and records the outcome."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from agent import control
from agent.library.queries import groups, lights
from agent.web.access import action_allowed
from agent.web.site import NotFound, Site, is_api, numeric_id

NIGHT_ACTIONS = ("pause", "resume", "park")


def who(request: Request) -> str:
    return f"web {request.client.host if request.client else '?'}"


def register(app: FastAPI, site: Site) -> None:
    root = site.root
    settings = site.settings

    def queued(request: Request, req: control.ControlRequest) -> Response:
        if is_api(request):
            return JSONResponse(req.as_dict(), status_code=202)
        return site.page(request, "queued.html", {"req": req}, status=202)

    async def simple_action(request: Request, action: str) -> Response:
        ok, refusal, _ = await action_allowed(site, request)
        if not ok:
            assert refusal is not None
            return refusal
        return queued(request, control.submit(root, action, {}, who(request)))

    def make(action: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            return await simple_action(request, action)

        handler.__name__ = f"{action}_night"
        handler.__doc__ = f"Ask the agent to {action} (queued in the control inbox; needs the token)."
        return handler

    for name in NIGHT_ACTIONS:
        app.post(f"/actions/{name}", include_in_schema=False)(make(name))
        app.post(f"/api/actions/{name}", tags=["actions"], status_code=202)(make(name))

    async def build_master(request: Request) -> Response:
        ok, refusal, form = await action_allowed(site, request)
        if not ok:
            assert refusal is not None
            return refusal
        ident = str(form.get("group") or "")
        key = groups.key_from_ident(ident)
        lib = site.need_library()
        if key is None or groups.group_frames(lib, settings.policy, ident) is None:
            raise NotFound("no such group of frames")
        params = {"frame_type": key.frame_type.value, "key": key.as_dict(), "forced": True}
        return queued(request, control.submit(root, "build_master", params, who(request)))

    async def recalibrate(request: Request) -> Response:
        ok, refusal, form = await action_allowed(site, request)
        if not ok:
            assert refusal is not None
            return refusal
        frame_id = numeric_id(str(form.get("frame_id") or request.path_params.get("frame_id") or ""))
        if lights.light_detail(site.need_library(), frame_id) is None:
            raise NotFound(f"no light #{frame_id}")
        return queued(request, control.submit(root, "recalibrate_light", {"frame_id": frame_id}, who(request)))

    app.post("/actions/build-master", include_in_schema=False)(build_master)
    app.post("/api/actions/build-master", tags=["actions"], status_code=202,
             summary="Build a master from a group now, below the threshold (forced); body: {group}")(build_master)  # fmt: skip
    app.post("/actions/recalibrate/{frame_id}", include_in_schema=False)(recalibrate)
    app.post("/api/actions/recalibrate/{frame_id}", tags=["actions"], status_code=202,
             summary="Calibrate a light again with the best masters now")(recalibrate)  # fmt: skip
