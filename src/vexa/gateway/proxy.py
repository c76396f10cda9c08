"""Forwarding to the internal services over one pooled HTTP client.

Bodies stream in both directions for large payloads (a long transcript is
not buffered whole); small answers with a known length are read in one go,
which is cheaper than a chunked stream. Downstream failures become short
JSON errors: unreachable → 503, too slow → 504, broken reply → 502.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

log = logging.getLogger(__name__)

# Request headers worth passing on; everything else (cookies, hop-by-hop) stays here.
_FORWARD_REQUEST = ("x-api-key", "x-admin-api-key", "content-type", "accept", "user-agent", "x-request-id")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "server",
    "date",
}
_BUFFER_LIMIT = 256 * 1024


class Forwarder:
    """One ``httpx.AsyncClient`` for every downstream, so connections are reused."""

    def __init__(self, *, connect_timeout_s: float, request_timeout_s: float, max_connections: int) -> None:
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            trust_env=False,  # never send internal traffic through a configured HTTP proxy
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def forward(self, request: Request, service: str, base_url: str, path: str) -> Response:
        """Send ``request`` to ``base_url + path`` with its query and body; relay the answer."""
        headers = {name: value for name in _FORWARD_REQUEST if (value := request.headers.get(name))}
        if request.client is not None:
            headers["x-forwarded-for"] = request.client.host
        body = await request.body()
        url = base_url.rstrip("/") + path
        outgoing = self.client.build_request(
            request.method, url, params=request.url.query or None, headers=headers, content=body or None
        )
        try:
            upstream = await self.client.send(outgoing, stream=True)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                return _unavailable(service, "did not accept the connection in time")
            log.warning("%s timed out on %s %s", service, request.method, path)
            return JSONResponse({"detail": f"{service} did not answer in time"}, status_code=504)
        except (httpx.ConnectError, httpx.NetworkError) as exc:
            log.warning("%s unreachable for %s %s: %s", service, request.method, path, type(exc).__name__)
            return _unavailable(service, "is not reachable")
        except httpx.HTTPError as exc:
            log.warning("%s failed on %s %s: %s", service, request.method, path, type(exc).__name__)
            return JSONResponse({"detail": f"{service} sent an invalid response"}, status_code=502)

        response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        length = upstream.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) <= _BUFFER_LIMIT:
            try:
                content = b"".join([chunk async for chunk in upstream.aiter_raw()])
            except httpx.TimeoutException:
                return JSONResponse({"detail": f"{service} did not answer in time"}, status_code=504)
            except httpx.HTTPError:
                return JSONResponse({"detail": f"{service} sent an invalid response"}, status_code=502)
            finally:
                await upstream.aclose()
            return Response(content, status_code=upstream.status_code, headers=response_headers)
        return StreamingResponse(
            _relay(upstream, service),
            status_code=upstream.status_code,
            headers=response_headers,
            background=BackgroundTask(upstream.aclose),
        )


async def _relay(upstream: httpx.Response, service: str) -> AsyncIterator[bytes]:
    """Raw bytes (still compressed if they were), so the gateway does no decoding work."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError:  # headers are gone already: all we can do is end the body early
        log.warning("%s broke off a streamed response", service)


def _unavailable(service: str, why: str) -> JSONResponse:
    return JSONResponse(
        {"detail": f"{service} {why}; try again shortly"}, status_code=503, headers={"Retry-After": "2"}
    )
