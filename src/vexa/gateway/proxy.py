"""Forwarding to the internal services over one pooled aiohttp client.

aiohttp rather than httpx here because the gateway sends every public request
through this client: profiled under 50 concurrent clients, httpx's connection
pool (scanning every pooled connection on each request) took about a third of
the gateway's CPU, which aiohttp's pool does not. Bodies are relayed raw (no
decompression), long answers streamed, short ones with a known length read in
one go. Downstream failures become short JSON errors: unreachable or slow to
accept → 503 with Retry-After, too slow to answer → 504, broken reply → 502.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from yarl import URL

log = logging.getLogger(__name__)

# Request headers worth passing on; everything else (cookies, hop-by-hop) stays here.
_FORWARD_REQUEST = (
    "x-api-key",
    "x-admin-api-key",
    "content-type",
    "accept",
    "user-agent",
    "x-request-id",
    "range",  # recordings' media: players seek with byte ranges
)
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
# Answers up to this size are read in one go and sent as one body; longer ones are streamed in
# 64 KiB chunks. 1 MiB covers a 1,000-segment JSON transcript (~400 KB), which streamed cost
# the gateway about twice the CPU; 200 such answers in flight hold ~80 MB.
_BUFFER_LIMIT = 1024 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class Forwarder:
    """One ``aiohttp.ClientSession`` for every downstream, so connections are reused."""

    def __init__(self, *, connect_timeout_s: float, request_timeout_s: float, max_connections: int) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=request_timeout_s
        )
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running event loop (aiohttp binds to it)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=0),
                timeout=self._timeout,
                auto_decompress=False,  # relay bytes as they came
                trust_env=False,  # never send internal traffic through a configured HTTP proxy
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _send(
        self, method: str, url: URL, headers: dict[str, str], body: bytes
    ) -> aiohttp.ClientResponse:
        """One retry of an idempotent request when its pooled connection was closed by the service."""
        try:
            return await self.session.request(
                method, url, headers=headers, data=body or None, allow_redirects=False
            )
        except aiohttp.ServerDisconnectedError:
            if method not in _IDEMPOTENT:
                raise
            return await self.session.request(
                method, url, headers=headers, data=body or None, allow_redirects=False
            )

    async def forward(self, request: Request, service: str, base_url: str, path: str) -> Response:
        """Send ``request`` to ``base_url + path`` with its query and body; relay the answer."""
        headers = {name: value for name in _FORWARD_REQUEST if (value := request.headers.get(name))}
        if request.client is not None:
            headers["x-forwarded-for"] = request.client.host
        # A GET without Content-Length or Transfer-Encoding has no body: don't wait for one.
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        body = await request.body() if has_body else b""
        url = base_url.rstrip("/") + path
        if request.url.query:
            url += "?" + request.url.query
        try:
            upstream = await self._send(request.method, URL(url, encoded=True), headers, body)
        except aiohttp.ConnectionTimeoutError:
            return _unavailable(service, "did not accept the connection in time")
        except TimeoutError:
            log.warning("%s timed out on %s %s", service, request.method, path)
            return _timed_out(service)
        except (aiohttp.ClientConnectionError, OSError) as exc:
            log.warning("%s unreachable for %s %s: %s", service, request.method, path, type(exc).__name__)
            return _unavailable(service, "is not reachable")
        except aiohttp.ClientError as exc:
            log.warning("%s failed on %s %s: %s", service, request.method, path, type(exc).__name__)
            return _invalid(service)

        response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        length = upstream.content_length
        if length is not None and length <= _BUFFER_LIMIT:
            try:
                content = await upstream.read()
            except TimeoutError:
                return _timed_out(service)
            except aiohttp.ClientError:
                return _invalid(service)
            finally:
                upstream.release()
            return Response(content, status_code=upstream.status, headers=response_headers)
        return StreamingResponse(
            _relay(upstream, service),
            status_code=upstream.status,
            headers=response_headers,
            background=BackgroundTask(upstream.release),
        )


async def _relay(upstream: aiohttp.ClientResponse, service: str) -> AsyncIterator[bytes]:
    """Raw bytes (still compressed if they were), so the gateway does no decoding work."""
    try:
        async for chunk in upstream.content.iter_chunked(64 * 1024):
            yield chunk
    except (aiohttp.ClientError, TimeoutError):  # headers are gone already: end the body early
        log.warning("%s broke off a streamed response", service)


def _timed_out(service: str) -> JSONResponse:
    return JSONResponse({"detail": f"{service} did not answer in time"}, status_code=504)


def _invalid(service: str) -> JSONResponse:
    return JSONResponse({"detail": f"{service} sent an invalid response"}, status_code=502)


def _unavailable(service: str, why: str) -> JSONResponse:
    return JSONResponse(
        {"detail": f"{service} {why}; try again shortly"}, status_code=503, headers={"Retry-After": "2"}
    )
