"""Request rate limits on the gateway: token buckets in Redis, per API key and per client address.

Buckets live in Redis so every gateway replica draws from the same ones, and one
Lua script refills and takes from all of a request's buckets at once (atomic: two
replicas cannot both spend the last token). The script reads Redis's own clock,
so replicas need no synchronised clocks. A request is refused with 429 and
``Retry-After`` (whole seconds until a token is back) when any of its buckets is
empty; nothing is taken from the others then.

A key's bucket is named by a hash of the key (never the key itself). When Redis
cannot be reached the gateway lets requests through (and says so in the log):
an outage of the limiter must not become an outage of the API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

KEY_PREFIX = "vexa:ratelimit:"
EXEMPT_PATHS = frozenset({"/health"})

# KEYS: bucket keys. ARGV: per bucket, refill rate (tokens/s) then capacity.
# Returns {allowed (1/0), milliseconds until every empty bucket has a token again}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local levels = {}
local wait_ms = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or cap
  local ts = tonumber(state[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate / 1000)
  levels[i] = tokens
  if tokens < 1 then
    wait_ms = math.max(wait_ms, math.ceil((1 - tokens) * 1000 / rate))
  end
end
local allowed = wait_ms == 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local tokens = levels[i]
  if allowed then tokens = tokens - 1 end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(cap * 1000 / rate) + 1000)
end
if allowed then return {1, 0} end
return {0, wait_ms}
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    """``per_minute`` requests a minute on average, bursts of up to ``burst``."""

    per_minute: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 and self.burst > 0


class RateLimiter:
    def __init__(self, redis: Redis, *, per_key: Bucket, per_ip: Bucket) -> None:
        self.redis = redis
        self.per_key = per_key
        self.per_ip = per_ip
        self._script = redis.register_script(_TAKE)
        self._warned_at = 0.0

    async def take(self, api_key: str | None, client_ip: str | None) -> float | None:
        """None when the request may go on, else seconds until it may be retried."""
        keys: list[str] = []
        args: list[float] = []
        if api_key and self.per_key.enabled:
            digest = hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:32]
            keys.append(f"{KEY_PREFIX}key:{digest}")
            args += [self.per_key.per_minute / 60, self.per_key.burst]
        if client_ip and self.per_ip.enabled:
            keys.append(f"{KEY_PREFIX}ip:{client_ip}")
            args += [self.per_ip.per_minute / 60, self.per_ip.burst]
        if not keys:
            return None
        try:
            allowed, wait_ms = await self._script(keys=keys, args=args)
        except RedisError as exc:
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                log.warning(
                    "rate limiter cannot reach Redis (%s); letting requests through", type(exc).__name__
                )
            return None
        return None if int(allowed) else int(wait_ms) / 1000


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _api_key(scope: Scope) -> str | None:
    """The key as the routes read it: the header, or (WebSocket) ``api_key`` in the query."""
    key = _header(scope, b"x-api-key")
    if key is None and scope["type"] == "websocket":
        values = parse_qs((scope.get("query_string") or b"").decode("latin-1")).get("api_key")
        key = values[0] if values else None
    return key


class RateLimitMiddleware:
    """Takes a token for every HTTP request and WebSocket handshake before any route runs."""

    def __init__(self, app: ASGIApp, limiter_of: Callable[[], RateLimiter | None]) -> None:
        self.app = app
        self._limiter_of = limiter_of  # the limiter lives in app.state, made in the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter | None = self._limiter_of()
        if limiter is not None:
            client = scope.get("client")
            wait_s = await limiter.take(_api_key(scope), client[0] if client else None)
            if wait_s is not None:
                await _refuse(scope, receive, send, wait_s)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, wait_s: float) -> None:
    retry_after = str(max(1, math.ceil(wait_s)))
    if scope["type"] == "websocket":  # refuse the handshake with an HTTP answer (ASGI denial response)
        await receive()  # websocket.connect
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": 1013, "reason": "rate limit reached"})
            return
        start_type, body_type = "websocket.http.response.start", "websocket.http.response.body"
    else:
        start_type, body_type = "http.response.start", "http.response.body"
    body = json.dumps({"detail": f"Rate limit reached; retry after {retry_after} s"}).encode()
    await send(
        {
            "type": start_type,
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", retry_after.encode()),
            ],
        }
    )
    await send({"type": body_type, "body": body})
