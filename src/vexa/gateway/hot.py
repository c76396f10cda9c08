"""The gateway's polled GET routes, forwarded without FastAPI's routing (see ``vexa.hot_routes``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vexa.auth import AuthenticatedUser
from vexa.gateway.routes import BOT_MANAGER, COLLECTOR, forward
from vexa.hot_routes import TRANSCRIPT_PATH, Handler, parse_meeting_path


async def _meetings(_: Any, request: Request, __: AuthenticatedUser, ___: Mapping[str, str]) -> Response:
    return await forward(request, COLLECTOR, "/meetings")


async def _bots_status(_: Any, request: Request, __: AuthenticatedUser, ___: Mapping[str, str]) -> Response:
    return await forward(request, BOT_MANAGER, "/bots/status")


async def _transcript(
    _: Any, request: Request, __: AuthenticatedUser, params: Mapping[str, str]
) -> Response | None:
    platform = parse_meeting_path(params)
    if platform is None:
        return None
    return await forward(request, COLLECTOR, f"/transcripts/{platform.value}/{params['native']}")


ROUTES: list[tuple[str, Handler]] = [
    ("/meetings", _meetings),
    ("/bots/status", _bots_status),
    (TRANSCRIPT_PATH, _transcript),
]
