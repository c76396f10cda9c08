"""The per-user delivery log behind ``GET /user/webhook/deliveries``: one row per attempt.

A capped Redis list per user (newest first, ``KEEP`` rows, kept ``TTL_S`` after
the last write) rather than a table: it is a recent-history view for debugging
an endpoint, written on every attempt, and never needs a join. Field names are
upstream's (``event_type``, ``event_id``, ``target_host``, ``outcome``,
``status_code``, ``attempt``, ``created_at``). Rows name the receiving host
only, never the URL (its path or query may carry the receiver's own secrets)
and never a signing secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal, get_args

from prometheus_client import Counter
from redis.asyncio import Redis

KEEP = 500
TTL_S = 7 * 24 * 3600

Outcome = Literal["delivered", "retrying", "failed", "blocked", "dropped"]
# Every delivery attempt, by the same outcome the user's log shows (the bot-manager serves it on /metrics).
DELIVERIES = Counter("vexa_webhook_deliveries", "Webhook delivery attempts by outcome.", ["result"])
for _outcome in get_args(Outcome):
    DELIVERIES.labels(_outcome)  # exported at 0 before the first delivery


def log_key(user_id: int) -> str:
    return f"webhooks:deliveries:{user_id}"


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    event_id: str
    event_type: str
    outcome: Outcome
    attempt: int
    target_host: str | None
    status_code: int | None
    error: str | None
    duration_ms: int | None
    next_attempt_at: str | None = None
    created_at: str = field(default_factory=lambda: iso(datetime.now(UTC)))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def record(redis: Redis, user_id: int, entry: DeliveryRecord) -> None:
    row = asdict(entry)
    key = log_key(user_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(key, json.dumps(row))
        pipe.ltrim(key, 0, KEEP - 1)
        pipe.expire(key, TTL_S)
        await pipe.execute()


async def recent(redis: Redis, user_id: int, limit: int) -> list[dict]:
    rows = await redis.lrange(log_key(user_id), 0, limit - 1)
    return [json.loads(r) for r in rows]
