"""Refuse oversized request bodies with a JSON 413 before anything buffers or parses them.

Without a cap, a 5 MB JSON body to ``POST /bots`` is buffered and parsed in
full before validation rejects it: memory and CPU spent on a request that was
never going to be accepted. This ASGI middleware answers 413 when the declared
``Content-Length`` is over the limit, without reading the body (a client that
sent ``Expect: 100-continue``, as curl does for large bodies, never sends it),
and counts the bytes of a chunked body as they arrive, stopping at the limit.
uvicorn discards whatever the client still sends, so it gets our answer
rather than a reset. WebSocket messages have their own cap (``ws_max_size``).

FastAPI's own ``max_body_size`` does the same checks but answers in plain
text; every other error of ours is ``{"detail": ...}`` JSON, and this one also
names the setting that raises the limit.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _detail(max_bytes: int) -> str:
    return f"Request body too large: the limit is {max_bytes} bytes (MAX_REQUEST_BODY_BYTES)"


class _TooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit.

    An ``HTTPException`` because FastAPI turns any other error met while reading
    a body into "400 error parsing the body"; this one it lets through as 413.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _detail(max_bytes))


class BodySizeLimit:
    """Pure ASGI, so it sees the body before Starlette's ``Request`` does."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:  # too late for a status code: the connection is simply cut
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": _detail(self.max_bytes)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
