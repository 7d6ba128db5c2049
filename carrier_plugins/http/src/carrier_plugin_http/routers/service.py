"""``GET /health``, ``GET /ready`` and the chat page at ``/``."""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from carrier_plugin_http import schemas
from carrier_plugin_http.deps import Hub
from carrier_plugin_http.errors import error_body, logger, request_id

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/health", response_model=schemas.Status)
async def health() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=schemas.Status,
    responses={503: {"model": schemas.Status}},
)
async def ready(request: Request, hub: Hub) -> Response:
    try:
        for runtime in hub.runtimes:
            await runtime.store.get_room(f"readiness-{runtime.agent_id}")
    except Exception as exc:
        rid = request_id(request.scope)
        logger.warning("Request %s: the memory store is not ready: %s", rid, exc)
        body = error_body("The memory store is not reachable.", rid, status="unavailable")
        return JSONResponse(body, 503)
    return JSONResponse({"status": "ready", "agents": len(hub.runtimes)})


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(_page())


@functools.cache
def _page() -> str:
    return files("carrier_plugin_http").joinpath("static/index.html").read_text("utf-8")
