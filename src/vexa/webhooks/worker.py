"""The delivery worker: claims due jobs, signs and sends them, retries with backoff for a day.

Runs in every bot-manager replica. A job is claimed with a lease (its score is
moved ``lease`` seconds ahead in one Lua call, so only one replica takes it); if
the process dies mid-attempt the lease runs out and another attempt follows,
which is why delivery is at-least-once and every delivery of an event carries
the same ``webhook-id``. Non-2xx answers worth retrying (5xx, 408, 425, 429) and
network errors are retried after ``base * 2^(n-1)`` seconds (capped at
``max_delay_s``) until ``retry_for_s`` (24 h by default) has passed since the
first attempt; then the job goes to the capped ``DEAD_KEY`` list (bodies only:
jobs never hold URLs or secrets). Other 4xx answers and refused (SSRF) URLs are
not retried. Each attempt is written to the user's delivery log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.webhooks import config, deliveries
from vexa.webhooks.delivery import Attempt, attempt, host_of, make_client
from vexa.webhooks.emit import DEAD_KEY, QUEUE_KEY
from vexa.webhooks.ssrf import Resolver

log = logging.getLogger(__name__)

DEAD_KEEP = 1000
_BATCH = 20
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], member) end
return due
"""


class WebhookWorker:
    """``run`` as one background task per process; ``close`` lets in-flight attempts finish."""

    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        allow_private: bool = False,
        legacy_bearer: bool = False,
        retry_base_s: float = 1.0,
        max_delay_s: float = 3600.0,
        retry_for_s: float = 24 * 3600.0,
        timeout_s: float = 10.0,
        poll_interval_s: float = 0.5,
        concurrency: int = 8,
        resolver: Resolver | None = None,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.allow_private = allow_private
        self.legacy_bearer = legacy_bearer
        self.retry_base_s = retry_base_s
        self.max_delay_s = max_delay_s
        self.retry_for_s = retry_for_s
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.lease_s = timeout_s + 30.0
        self.resolver = resolver
        self._claim = redis.register_script(_CLAIM)
        self.concurrency = concurrency
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def delay_after(self, attempts: int) -> float:
        return min(self.retry_base_s * 2 ** (attempts - 1), self.max_delay_s)

    async def _log(
        self,
        job: dict[str, Any],
        outcome: deliveries.Outcome,
        result: Attempt | None,
        host: str | None,
        **extra: Any,
    ) -> None:
        entry = deliveries.DeliveryRecord(
            event_id=job["id"],
            event_type=job["event"],
            outcome=outcome,
            attempt=int(job["attempt"]) + 1,
            target_host=host,
            status_code=result.status_code if result else None,
            error=result.error if result else extra.pop("error", None),
            duration_ms=result.duration_ms if result else None,
            **extra,
        )
        deliveries.DELIVERIES.labels(outcome).inc()
        with contextlib.suppress(RedisError):
            await deliveries.record(self.redis, int(job["user_id"]), entry)

    async def _deliver(self, client: httpx.AsyncClient, raw: str) -> None:
        try:
            await self._deliver_claimed(client, raw)
        except Exception:  # e.g. the database is down: the lease runs out and the job comes back
            log.warning("webhook delivery interrupted; it will be retried", exc_info=True)

    async def _deliver_claimed(self, client: httpx.AsyncClient, raw: str) -> None:
        job = json.loads(raw)
        async with self.sessionmaker() as session:
            settings = await config.load(session, int(job["user_id"]))
        if settings is None or not settings.url:
            await self._log(job, "dropped", None, None, error="the user has no webhook any more")
            await self.redis.zrem(QUEUE_KEY, raw)
            return
        host = host_of(settings.url)
        result = await attempt(
            client,
            settings.url,
            settings.secret,
            job["id"],
            job["event"],
            job["body"].encode("utf-8"),
            legacy_bearer=self.legacy_bearer,
        )
        await self._settle(raw, job, result, host)

    async def _settle(self, raw: str, job: dict[str, Any], result: Attempt, host: str | None) -> None:
        tries = int(job["attempt"]) + 1
        what = f"webhook {job['event']} {job['id']} to {host} (attempt {tries})"
        if result.ok:
            log.info("%s delivered: HTTP %s", what, result.status_code)
            await self._log(job, "delivered", result, host)
            await self.redis.zrem(QUEUE_KEY, raw)
            return
        due = time.time() + self.delay_after(tries)
        if result.retryable and due - float(job["first_at"]) <= self.retry_for_s:
            log.info("%s failed (%s); next attempt in %.0fs", what, result.error, due - time.time())
            await self._log(
                job,
                "retrying",
                result,
                host,
                next_attempt_at=deliveries.iso(datetime.fromtimestamp(due, UTC)),
            )
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(QUEUE_KEY, raw)
                pipe.zadd(QUEUE_KEY, {json.dumps({**job, "attempt": tries}): due})
                await pipe.execute()
            return
        outcome: deliveries.Outcome = "blocked" if result.blocked else "failed"
        log.warning("%s %s, not retried: %s", what, outcome, result.error)
        await self._log(job, outcome, result, host)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(QUEUE_KEY, raw)
            if not result.blocked:
                pipe.lpush(DEAD_KEY, json.dumps({**job, "attempt": tries, "last_error": result.error}))
                pipe.ltrim(DEAD_KEY, 0, DEAD_KEEP - 1)
            await pipe.execute()

    async def _claim_due(self) -> list[str]:
        """At most as many jobs as there are free slots, so no claimed job waits out its lease."""
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return []
        now = time.time()
        claimed = await self._claim(keys=[QUEUE_KEY], args=[now, min(free, _BATCH), now + self.lease_s])
        return [c if isinstance(c, str) else c.decode() for c in claimed]

    async def run(self) -> None:
        """Claim due jobs and deliver them concurrently until ``close``."""
        self._runner = asyncio.current_task()
        async with make_client(
            timeout_s=self.timeout_s, allow_private=self.allow_private, resolver=self.resolver
        ) as client:
            while not self._stopping.is_set():
                claimed: list[str] = []
                try:
                    claimed = await self._claim_due()
                    for raw in claimed:
                        task = asyncio.create_task(self._deliver(client, raw))
                        self._inflight.add(task)
                        task.add_done_callback(self._finished)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("webhook queue unavailable; retrying", exc_info=True)
                if claimed and len(self._inflight) < self.concurrency:
                    continue  # a backlog: claim again at once while slots are free
                # Idle, or every slot busy: wait for a free slot, new work (polled) or close().
                self._slot_freed.clear()
                waits = {
                    asyncio.ensure_future(self._stopping.wait()),
                    asyncio.ensure_future(self._slot_freed.wait()),
                }
                _, pending = await asyncio.wait(
                    waits, timeout=self.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in pending | waits:
                    waiter.cancel()
            if self._inflight:  # let in-flight attempts finish while the client is open
                await asyncio.wait(set(self._inflight), timeout=self.timeout_s)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_freed.set()

    async def close(self) -> None:
        """Stop claiming; queued jobs stay in Redis for the next start or another replica."""
        self._stopping.set()
        if self._runner is not None and not self._runner.done():
            await asyncio.wait({self._runner}, timeout=self.timeout_s + 5)
            if not self._runner.done():
                self._runner.cancel()
