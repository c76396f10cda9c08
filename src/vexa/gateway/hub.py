"""Live-event fan-out: ONE Redis pub/sub connection per gateway process.

Channels are subscribed on demand with reference counts (``meeting:{id}:events``,
see ``vexa.events``), so a meeting nobody watches costs nothing and a thousand
watchers of one meeting cost one Redis subscription. Each message is decoded
once and handed to every watcher's bounded queue with ``put_nowait``; a watcher
whose queue is full is dropped instead of slowing the others down.

The reader loop survives Redis restarts: it reconnects with backoff and
re-subscribes every channel that still has watchers. Pub/sub is at-most-once,
so events published while Redis is away are lost (clients can re-fetch the
transcript over HTTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from vexa.events import meeting_channel

log = logging.getLogger(__name__)

# Always subscribed, so the connection stays in pub/sub mode even with no watchers.
KEEPALIVE_CHANNEL = "vexa:gateway:hub"
IDLE_PING_S = 10.0
SUBSCRIBE_CONFIRM_S = 3.0


class Watcher(Protocol):
    """What the hub needs from a client: a non-blocking put that may refuse."""

    def offer(self, message: str) -> bool:
        """Queue ``message``; False when the client is too slow (its queue is full)."""
        ...


class EventHub:
    def __init__(self, redis: Redis, on_slow: Callable[[Watcher], None]) -> None:
        self._redis = redis
        self._on_slow = on_slow
        self._watchers: dict[str, set[Watcher]] = {}
        self._pubsub: PubSub | None = None
        self._lock = asyncio.Lock()
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.delivered = 0
        self.dropped = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ws-event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._close_pubsub()

    @property
    def channel_count(self) -> int:
        return len(self._watchers)

    @property
    def subscription_count(self) -> int:
        """(watcher, meeting) pairs: what one published event costs in offers."""
        return sum(len(watchers) for watchers in self._watchers.values())

    # -- watchers ----------------------------------------------------------------------------

    async def watch(self, meeting_id: int, watcher: Watcher) -> None:
        """Add a watcher; returns once Redis confirmed the subscription (or it will be on reconnect)."""
        channel = meeting_channel(meeting_id)
        watchers = self._watchers.setdefault(channel, set())
        first = not watchers
        watchers.add(watcher)
        if first:
            await self._subscribe(channel)

    async def unwatch(self, meeting_id: int, watcher: Watcher) -> None:
        channel = meeting_channel(meeting_id)
        watchers = self._watchers.get(channel)
        if not watchers:
            return
        watchers.discard(watcher)
        if not watchers:
            del self._watchers[channel]
            await self._command("unsubscribe", channel)

    def forget(self, watcher: Watcher, meeting_ids: list[int]) -> None:
        """Synchronous removal (for dropped clients); empty channels are unsubscribed in the background."""
        for meeting_id in meeting_ids:
            channel = meeting_channel(meeting_id)
            watchers = self._watchers.get(channel)
            if watchers is None:
                continue
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[channel]
                asyncio.get_running_loop().create_task(self._command("unsubscribe", channel))

    # -- Redis -------------------------------------------------------------------------------

    async def _subscribe(self, channel: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(future)
        if await self._command("subscribe", channel):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), SUBSCRIBE_CONFIRM_S)
        # Not connected: the reader re-subscribes every watched channel when it reconnects.

    async def _command(self, name: str, channel: str) -> bool:
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return False
            if name == "unsubscribe" and channel in self._watchers:  # re-watched meanwhile
                return True
            try:
                await getattr(pubsub, name)(channel)
                return True
            except Exception as exc:
                log.warning(
                    "redis %s %s failed (%s); will retry on reconnect", name, channel, type(exc).__name__
                )
                return False

    async def _close_pubsub(self) -> None:
        async with self._lock:
            pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                pubsub = self._redis.pubsub()
                async with self._lock:
                    await pubsub.subscribe(KEEPALIVE_CHANNEL, *self._watchers)
                    self._pubsub = pubsub
                if backoff > 0.1:
                    log.info(
                        "event hub reconnected to Redis; %d meeting channels re-subscribed",
                        len(self._watchers),
                    )
                backoff = 0.1
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub lost Redis (%s); reconnecting in %.1fs", type(exc).__name__, backoff)
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=IDLE_PING_S)
            if message is None:
                await pubsub.ping()  # a dead connection shows up as an error on the next read
                continue
            kind = message["type"]
            channel = message.get("channel")
            channel = channel.decode() if isinstance(channel, bytes) else channel
            if kind == "message":
                self._dispatch(channel, message["data"])
            elif kind == "subscribe":
                for future in self._confirm.pop(channel, []):
                    if not future.done():
                        future.set_result(None)

    def _dispatch(self, channel: str, data: bytes | str) -> None:
        watchers = self._watchers.get(channel)
        if not watchers:
            return
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        slow: list[Watcher] = []
        for watcher in list(watchers):
            if watcher.offer(text):
                self.delivered += 1
            else:
                slow.append(watcher)
        for watcher in slow:
            self.dropped += 1
            self._on_slow(watcher)
