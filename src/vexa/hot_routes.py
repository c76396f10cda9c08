"""A short way in, ahead of FastAPI's router, for the few GET routes clients poll.

Profiled under 50 concurrent clients, FastAPI's per-request machinery (routing,
solving the key and query dependencies, the exception and exit-stack layers) was
about half of the gateway's CPU for a ``GET /meetings`` and a third of the
collector's. This layer answers only requests that the declared route would
answer in exactly the same way, and hands everything else to FastAPI untouched:

- ``GET`` with no query string and no request body;
- an ``X-API-Key`` already in the verifier's cache (``TokenVerifier.cached``: no
  database read here), unexpired and allowed by its scope for this path;
- a handler that accepts the path (it returns ``None`` to decline, e.g. an
  invalid meeting id, which FastAPI then answers with its usual 422).

An exception in a handler also hands the request to FastAPI (nothing has been
sent or read yet), so errors keep their usual answers (503s, JSON 500s). The
routes stay declared in FastAPI, which keeps serving them in the OpenAPI
document and for every request this layer passes on. Middlewares added after
this one (rate limits, the body cap) still run first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from vexa.auth import AuthenticatedUser, TokenVerifier, scope_allows
from vexa.platforms import Platform, native_id_problem

log = logging.getLogger(__name__)

# (the app's state, the request, its caller, the path's named groups) -> the answer, or None to decline
Handler = Callable[[Any, Request, AuthenticatedUser, Mapping[str, str]], Awaitable[Response | None]]

ANSWERED = Counter(
    "vexa_hot_route_requests", "GET requests answered ahead of FastAPI's router (vexa.hot_routes)", ["route"]
)
_BODY_HEADERS = (b"content-length", b"transfer-encoding")
TRANSCRIPT_PATH = r"/transcripts/(?P<platform>[^/]+)/(?P<native>[^/]+)"
MAX_NATIVE_ID = 255  # as the routes' Path(max_length=...)


class HotRoutes:
    """Pure ASGI; ``routes`` pairs a full-match path pattern with its handler."""

    def __init__(self, app: ASGIApp, state: Any, routes: Sequence[tuple[str, Handler]]) -> None:
        self.app = app
        self._state = state
        self._routes = [
            (re.compile(pattern), handler, ANSWERED.labels(pattern.split("/(?P")[0]))
            for pattern, handler in routes
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._answer(scope, receive) if _eligible(scope) else None
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> Response | None:
        path: str = scope["path"]
        for pattern, handler, answered in self._routes:
            match = pattern.fullmatch(path)
            if match is not None:
                response = await self._run(handler, match.groupdict(), scope, receive)
                if response is not None:
                    answered.inc()
                return response
        return None

    async def _run(
        self, handler: Handler, params: Mapping[str, str], scope: Scope, receive: Receive
    ) -> Response | None:
        verifier: TokenVerifier | None = getattr(self._state, "token_verifier", None)
        key = _header(scope, b"x-api-key")
        user = verifier.cached(key) if verifier is not None and key else None
        if user is None or user.expired() or not scope_allows(user.scope, "GET", scope["path"]):
            return None
        try:
            return await handler(self._state, Request(scope, receive), user, params)
        except Exception as exc:  # FastAPI answers it again, with its own error handling
            log.debug("hot route %s passed on after %s", scope["path"], type(exc).__name__)
            return None


def _eligible(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
        return False
    return not any(name in _BODY_HEADERS for name, _ in scope["headers"])


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def parse_meeting_path(params: Mapping[str, str]) -> Platform | None:
    """The platform if ``platform``/``native`` pass the routes' checks, else None (FastAPI answers 422)."""
    try:
        platform = Platform(params["platform"])
    except ValueError:
        return None
    native = params["native"]
    if len(native) > MAX_NATIVE_ID or native_id_problem(platform, native):
        return None
    return platform
