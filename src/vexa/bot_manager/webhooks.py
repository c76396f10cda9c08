"""User webhooks: signed, retried, delivered off the request path.

Why a Redis sorted set (``WEBHOOK_QUEUE_KEY``, score = when the next attempt is
due) rather than an in-memory queue: a pending or retrying delivery survives a
bot-manager restart, and several manager replicas can share the queue safely:
a job is claimed with ``ZREM``, which only one worker can win. The cost is
at-most-once across a crash in the middle of one HTTP attempt.

Each delivery is a POST of the meeting JSON with
``X-Vexa-Signature: sha256=<hex HMAC-SHA256(WEBHOOK_SECRET, body)>``,
``X-Vexa-Event`` and ``X-Vexa-Timestamp``; non-2xx answers and network errors
are retried with exponential backoff up to ``WEBHOOK_MAX_ATTEMPTS``, then the
job goes to the capped list ``WEBHOOK_DEAD_KEY`` for inspection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from vexa.bot_manager.metrics import WEBHOOK_DELIVERIES

log = logging.getLogger(__name__)

WEBHOOK_QUEUE_KEY = "bot_manager:webhooks:due"
WEBHOOK_DEAD_KEY = "bot_manager:webhooks:dead"
_DEAD_KEEP = 1000
_BATCH = 20


def sign(secret: str, body: bytes) -> str:
    """The ``X-Vexa-Signature`` value for ``body``; receivers recompute and compare."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _redact_url(url: str) -> str:
    """Scheme, host and path only: query strings often carry receiver secrets."""
    return url.split("?", 1)[0]


class WebhookDispatcher:
    """``enqueue`` from the request path; ``run`` as one background task per process."""

    def __init__(
        self,
        redis: Redis,
        *,
        secret: str | None,
        max_attempts: int = 6,
        retry_base_s: float = 1.0,
        timeout_s: float = 10.0,
        poll_interval_s: float = 0.5,
        concurrency: int = 8,
    ) -> None:
        self.redis = redis
        self.secret = secret
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        if not secret:
            log.warning("WEBHOOK_SECRET is not set: webhooks are sent unsigned")

    async def enqueue(self, url: str, event: str, payload: dict[str, Any]) -> str:
        """Queue one delivery, due now; returns its delivery id."""
        job = {
            "id": uuid.uuid4().hex,
            "url": url,
            "event": event,
            "body": json.dumps(payload, separators=(",", ":"), default=str),
            "attempt": 0,
        }
        await self.redis.zadd(WEBHOOK_QUEUE_KEY, {json.dumps(job): time.time()})
        self._wake.set()
        return job["id"]

    def headers(self, job: dict[str, Any], body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "vexa-webhooks/1",
            "X-Vexa-Event": job["event"],
            "X-Vexa-Timestamp": str(int(time.time())),
            "X-Vexa-Delivery": job["id"],
        }
        if self.secret:
            headers["X-Vexa-Signature"] = sign(self.secret, body)
        return headers

    async def _attempt(self, client: httpx.AsyncClient, job: dict[str, Any]) -> str | None:
        """None on success, else why it failed."""
        body = job["body"].encode("utf-8")
        try:
            response = await client.post(job["url"], content=body, headers=self.headers(job, body))
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _deliver(self, client: httpx.AsyncClient, raw: str) -> None:
        async with self._slots:
            job = json.loads(raw)
            problem = await self._attempt(client, job)
            attempt = int(job["attempt"]) + 1
            target = _redact_url(job["url"])
            if problem is None:
                WEBHOOK_DELIVERIES.labels("delivered").inc()
                log.info(
                    "webhook %s %s delivered to %s (attempt %d)", job["event"], job["id"], target, attempt
                )
                return
            job["attempt"] = attempt
            if attempt >= self.max_attempts:
                WEBHOOK_DELIVERIES.labels("gave_up").inc()
                log.warning(
                    "webhook %s to %s gave up after %d attempts: %s", job["id"], target, attempt, problem
                )
                job["last_error"] = problem
                with contextlib.suppress(RedisError):
                    await self.redis.lpush(WEBHOOK_DEAD_KEY, json.dumps(job))
                    await self.redis.ltrim(WEBHOOK_DEAD_KEY, 0, _DEAD_KEEP - 1)
                return
            WEBHOOK_DELIVERIES.labels("retry").inc()
            delay = self.retry_base_s * 2 ** (attempt - 1)
            log.info(
                "webhook %s to %s failed (%s); retry %d in %.1fs", job["id"], target, problem, attempt, delay
            )
            await self.redis.zadd(WEBHOOK_QUEUE_KEY, {json.dumps(job): time.time() + delay})

    async def _claim_due(self) -> list[str]:
        due = await self.redis.zrangebyscore(WEBHOOK_QUEUE_KEY, "-inf", time.time(), start=0, num=_BATCH)
        claimed = []
        for raw in due:
            if await self.redis.zrem(WEBHOOK_QUEUE_KEY, raw):
                claimed.append(raw if isinstance(raw, str) else raw.decode())
        return claimed

    async def run(self) -> None:
        """Claim due jobs and deliver them concurrently until cancelled."""
        self._runner = asyncio.current_task()
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
            while not self._stopping.is_set():
                try:
                    for raw in await self._claim_due():
                        task = asyncio.create_task(self._deliver(client, raw))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("webhook queue unavailable; retrying", exc_info=True)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            # Shutting down: let in-flight attempts finish while the client is still open.
            if self._inflight:
                await asyncio.wait(set(self._inflight), timeout=self.timeout_s)

    async def close(self) -> None:
        """Stop claiming jobs; queued ones stay in Redis for the next start (or another replica)."""
        self._stopping.set()
        self._wake.set()
        if self._runner is not None and not self._runner.done():
            await asyncio.wait({self._runner}, timeout=self.timeout_s + 5)
            if not self._runner.done():
                self._runner.cancel()
