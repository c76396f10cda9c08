"""``WebhookEmitter.emit(user_id, event, data, key=...)``: the one call that sends a user a webhook.

Any service with the database and Redis can emit (the bot-manager emits the
meeting events; the collector can emit ``transcription.ready``, recording code
``recording.ready``). ``emit`` checks that the user has a URL and wants this
event, wraps ``data`` in upstream's envelope with a stable ``event_id``, and
queues it in Redis; the bot-manager's worker (``worker.py``) delivers, signs,
retries and logs. Nothing here touches the network, so emitting from a request
handler is cheap and never waits for the user's server.

The queue is a sorted set (``QUEUE_KEY``, score = when the next attempt is due).
A job names the user and carries the body, never a URL or secret: both are read
at send time, so a changed URL or rotated secret applies to pending retries too.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.webhooks import config
from vexa.webhooks.events import canonical, envelope, event_id, is_enabled

log = logging.getLogger(__name__)

QUEUE_KEY = "webhooks:due"
DEAD_KEY = "webhooks:dead"
SEEN_TTL_S = 48 * 3600  # longer than the retry window: a re-emitted event is not queued twice


def seen_key(ident: str) -> str:
    return f"webhooks:seen:{ident}"


def new_job(user_id: int, event: str, ident: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ident,
        "user_id": user_id,
        "event": event,
        "body": json.dumps(body, separators=(",", ":"), default=str),
        "attempt": 0,
        "first_at": time.time(),
    }


async def enqueue(redis: Redis, job: dict[str, Any], due: float | None = None) -> None:
    await redis.zadd(QUEUE_KEY, {json.dumps(job): due if due is not None else time.time()})


class WebhookEmitter:
    def __init__(self, redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker

    async def emit(self, user_id: int, event: str, data: dict[str, Any], *, key: str) -> str | None:
        """Queue ``event`` for ``user_id``; returns its event id, or None when the user does not get it.

        ``key`` names the logical event within its type (e.g. ``meeting:12:completed``):
        emitting the same (user, event, key) again is a no-op, and every delivery of it
        carries the same ``event_id``/``webhook-id``, so receivers can de-duplicate.
        """
        return (await self.emit_all(user_id, [(event, data)], key=key))[0]

    async def emit_all(
        self, user_id: int, events: list[tuple[str, dict[str, Any]]], *, key: str
    ) -> list[str | None]:
        """Several events of one happening (e.g. a status change): the user's settings are read once."""
        names = [canonical(event) for event, _ in events]
        async with self.sessionmaker() as session:
            settings = await config.load(session, user_id)
        out: list[str | None] = []
        for event, (_, data) in zip(names, events, strict=True):
            if settings is None or not settings.url or not is_enabled(settings.events, event):
                out.append(None)
                continue
            ident = event_id(user_id, event, key)
            out.append(ident)
            if not await self.redis.set(seen_key(ident), "1", nx=True, ex=SEEN_TTL_S):
                continue  # already queued (a repeated callback, a second replica)
            try:
                await enqueue(self.redis, new_job(user_id, event, ident, envelope(event, data, ident)))
            except BaseException:
                await self.redis.delete(seen_key(ident))  # not queued: a later emit may try again
                raise
            log.info("webhook %s %s queued for user %s", event, ident, user_id)
        return out
