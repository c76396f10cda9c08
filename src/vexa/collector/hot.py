"""The collector's polled GET routes without FastAPI's routing (see ``vexa.hot_routes``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vexa.auth import AuthenticatedUser
from vexa.collector.api import meetings_answer, transcript_answer
from vexa.hot_routes import TRANSCRIPT_PATH, Handler, parse_meeting_path
from vexa.meeting_filters import MeetingFilters


async def _meetings(state: Any, _: Request, user: AuthenticatedUser, __: Mapping[str, str]) -> Response:
    return await meetings_answer(state, user, MeetingFilters())


async def _transcript(
    state: Any, _: Request, user: AuthenticatedUser, params: Mapping[str, str]
) -> Response | None:
    platform = parse_meeting_path(params)
    if platform is None:
        return None
    return await transcript_answer(state, user, platform, params["native"])


ROUTES: list[tuple[str, Handler]] = [("/meetings", _meetings), (TRANSCRIPT_PATH, _transcript)]
