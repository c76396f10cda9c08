"""User API keys: generation, hashing and the one FastAPI dependency that checks them.

Tokens are random 40-character strings; only their SHA-256 is stored, so a
leaked database does not leak working keys. SHA-256 (not a slow KDF) is right
here because the tokens carry ~238 bits of entropy: there is nothing to
brute-force, and every request must verify one. Lookup is by hash (indexed)
and the match is re-checked with ``hmac.compare_digest``.

Revocation must take effect at once "everywhere, including caches": every
service keeps a short in-process cache and subscribes to the Redis channel
``REVOCATION_CHANNEL``; the admin API publishes the revoked hash there. A check
that read the database before a revocation and finishes after it must not put
the key back in the cache: every revocation bumps an epoch, and a lookup that
saw the epoch change reads again instead of caching. Long-lived connections
(WebSockets) register with ``on_revocation`` and are closed by their owner.

Keys carry a scope (``Scope``) and an optional expiry. Both are checked on every
use, from the cached answer too, so a key expires on time without a database
read: an expired key answers 401, a key used outside its scope 403 naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.db.models import APIToken, User
from vexa.tasks import cancel_and_wait

log = logging.getLogger(__name__)

REVOCATION_CHANNEL = "vexa:token_revoked"
TOKEN_LENGTH = 40
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="A user's API key.")


class Scope(StrEnum):
    """What a key may do. ``full`` is upstream's only kind and the default."""

    full = "full"
    bots = "bots"  # the /bots routes only: start, stop, reconfigure, status
    transcripts = "transcripts"  # read-only: GET meetings and transcripts, live transcript WebSocket


_READ_METHODS = frozenset({"GET", "HEAD"})


def scope_allows(scope: str, method: str, path: str) -> bool:
    """Whether a key of ``scope`` may call ``method path`` (the public paths, same on every service)."""
    if scope == Scope.full:
        return True
    if scope == Scope.bots:
        return path == "/bots" or path.startswith("/bots/")
    if scope == Scope.transcripts:
        return method.upper() in _READ_METHODS and (
            path == "/meetings" or path.startswith(("/meetings/", "/transcripts/"))
        )
    return False


def may_follow_live_events(scope: str) -> bool:
    """``WS /ws`` streams transcripts as they are made: a read, like GET /transcripts."""
    return scope in (Scope.full, Scope.transcripts)


def generate_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    """What a handler learns about its caller; never the token itself."""

    user_id: int
    email: str
    max_concurrent_bots: int
    token_id: int
    token_hash: str
    scope: str = Scope.full
    expires_at: datetime | None = None

    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= datetime.now(UTC)

    def usable(self) -> bool:
        """For internal paths (segments from a producer): not expired; scope does not apply."""
        return not self.expired()


class TokenVerifier:
    """Hashed lookup with a short positive cache and push-based revocation."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        cache_ttl_s: float = 30.0,
        last_used_interval_s: float = 60.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = cache_ttl_s
        self._last_used_interval = last_used_interval_s
        self._cache: dict[str, tuple[float, AuthenticatedUser]] = {}
        self._last_used_written: dict[int, float] = {}
        self._listener: asyncio.Task[None] | None = None
        self._epoch = 0  # bumped by every revocation (and by a lost subscription)
        self._revocation_hooks: set[Callable[[str | None], None]] = set()

    async def verify(self, token: str | None) -> AuthenticatedUser | None:
        """The token's user, or None for a missing, unknown or revoked token.

        An expired key is returned (so callers can answer 401 "expired"); check ``expired()``.
        """
        if not token or len(token) > 512:
            return None
        digest = hash_token(token)
        now = time.monotonic()
        fresh = self._fresh(digest, now)
        if fresh is not None:
            return fresh
        for _ in range(3):
            epoch = self._epoch
            found = await self._lookup(digest, now)
            if self._epoch == epoch:  # no revocation arrived while we read: the answer stands
                break
        else:  # revocations keep arriving: answer from the last read, cache nothing
            return found
        if found is not None:
            self._cache[digest] = (now + self._ttl, found)
        return found

    def cached(self, token: str) -> AuthenticatedUser | None:
        """The cached answer for ``token`` while fresh, else None; never reads the database.

        For ``vexa.hot_routes``, which passes a request on to the full route (and so to
        ``verify``) when this says None.
        """
        if len(token) > 512:
            return None
        return self._fresh(hash_token(token), time.monotonic())

    def _fresh(self, digest: str, now: float) -> AuthenticatedUser | None:
        cached = self._cache.get(digest)
        return cached[1] if cached and cached[0] > now else None

    async def _lookup(self, digest: str, now: float) -> AuthenticatedUser | None:
        async with self._sessionmaker() as session:
            row = (
                await session.execute(
                    select(APIToken, User)
                    .join(User, User.id == APIToken.user_id)
                    .where(APIToken.token_hash == digest, APIToken.revoked.is_(False))
                )
            ).first()
            if row is None:
                self._cache.pop(digest, None)
                return None
            token_row, user = row
            if not hmac.compare_digest(token_row.token_hash, digest):
                return None
            if now - self._last_used_written.get(token_row.id, -1e9) > self._last_used_interval:
                await session.execute(
                    update(APIToken).where(APIToken.id == token_row.id).values(last_used_at=datetime.now(UTC))
                )
                await session.commit()
                self._last_used_written[token_row.id] = now
        return AuthenticatedUser(
            user_id=user.id,
            email=user.email,
            max_concurrent_bots=user.max_concurrent_bots,
            token_id=token_row.id,
            token_hash=digest,
            scope=token_row.scope,
            expires_at=token_row.expires_at,
        )

    def forget(self, token_hash: str | None = None) -> None:
        """Drop one hash (or everything, when revocations may have been missed) and tell the hooks."""
        self._epoch += 1
        if token_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(token_hash, None)
        for hook in list(self._revocation_hooks):
            try:
                hook(token_hash)
            except Exception:
                log.exception("revocation hook failed")

    def on_revocation(self, hook: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``hook(hash)`` on each revocation (``None``: any key may be revoked, check again).

        Returns the function that removes the hook. Hooks run in the event loop and must not block.
        """
        self._revocation_hooks.add(hook)
        return lambda: self._revocation_hooks.discard(hook)

    async def start_revocation_listener(self, redis: Redis) -> None:
        """Subscribe to revocations so a revoked key stops working before the TTL runs out.

        The subscription survives Redis outages: on a dropped connection the cache
        is cleared (a revocation may have been missed) and the listener
        resubscribes with backoff.
        """
        if self._listener is not None:
            return
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(redis, ready), name="token-revocation-listener")
        # Wait for the first subscription so a revocation right after startup is not missed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=5)

    async def _listen(self, redis: Redis, ready: asyncio.Event) -> None:
        delay = 0.5
        while True:
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(REVOCATION_CHANNEL)
                ready.set()
                delay = 0.5
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message["data"]
                    data = data.decode() if isinstance(data, bytes) else str(data)
                    self.forget(None if data == "*" else data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped Redis connection must not kill the service
                log.warning(
                    "token revocation listener lost Redis (%s); retrying in %.1fs", type(exc).__name__, delay
                )
                self.forget()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        await cancel_and_wait(self._listener)
        self._listener = None


async def publish_revocation(redis: Redis, token_hash: str) -> None:
    await redis.publish(REVOCATION_CHANNEL, token_hash)


def get_verifier(request: Request) -> TokenVerifier:
    verifier = getattr(request.app.state, "token_verifier", None)
    if verifier is None:  # pragma: no cover - a wiring error, not a user error
        raise RuntimeError("app.state.token_verifier is not set")
    return verifier


def out_of_scope_detail(scope: str, method: str, path: str) -> str:
    return f"This API key has scope '{scope}', which does not allow {method.upper()} {path}."


async def require_user(request: Request, api_key: str | None = Security(api_key_header)) -> AuthenticatedUser:
    """The shared dependency: 401 without a key or with an expired one, 403 for an unknown or
    revoked one, 403 naming the scope for a key used outside it."""
    if not api_key:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Missing API key (X-API-Key header)")
    user = await get_verifier(request).verify(api_key)
    if user is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Invalid or revoked API key")
    if user.expired():
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="API key expired")
    if not scope_allows(user.scope, request.method, request.url.path):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=out_of_scope_detail(user.scope, request.method, request.url.path),
        )
    return user
