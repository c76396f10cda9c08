"""Ordered, buffered XADD to Redis streams that survives short Redis outages.

Sessions never wait on Redis: they append to an in-memory queue and a single
task writes it in order. While Redis is down the queue holds up to
``max_buffered`` entries (oldest dropped beyond that, with a log line), and
writing resumes with backoff, so a Redis blip costs latency, not the session.

There is no ``MAXLEN``: trimming by length would delete entries the collector has
not read yet. The collector trims what its consumer group has acknowledged
(``vexa.collector.trimming``).
"""

from __future__ import annotations

import asyncio
import collections
import logging

from pydantic import BaseModel
from redis.asyncio import Redis

from vexa.streams import to_fields
from vexa.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class StreamPublisher:
    def __init__(self, redis_url: str, *, max_buffered: int = 10_000) -> None:
        self._redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=3)
        self._queue: collections.deque[tuple[str, dict[str, str]]] = collections.deque()
        self._max_buffered = max_buffered
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.published = 0
        self.healthy = True

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stream-publisher")

    def publish(self, stream: str, message: BaseModel) -> None:
        """Queue one message (field ``payload`` = its JSON); never blocks."""
        self._queue.append((stream, to_fields(message)))
        while len(self._queue) > self._max_buffered:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.error("Redis unavailable too long: dropped %d oldest stream messages", self.dropped)
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            stream, fields = self._queue[0]
            try:
                await self._redis.xadd(stream, fields)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.healthy:
                    log.warning(
                        "Redis XADD failed (%s); buffering %d message(s) and retrying", exc, self.backlog
                    )
                self.healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self._queue and self._queue[0][1] is fields:
                self._queue.popleft()
            self.published += 1
            if not self.healthy:
                log.info("Redis reachable again; %d message(s) still buffered", self.backlog)
            self.healthy, backoff = True, 0.2

    async def flush(self, within_s: float) -> bool:
        """Wait until the queue is empty (True) or ``within_s`` passes (polls: shutdown only)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self._queue and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return not self._queue

    async def close(self, within_s: float = 5.0) -> None:
        if not await self.flush(within_s):
            log.error("shutting down with %d unpublished stream message(s)", self.backlog)
        await cancel_and_wait(self._task)
        await self._redis.aclose()
