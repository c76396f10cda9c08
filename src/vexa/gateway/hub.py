"""Live-event fan-out: ONE Redis pub/sub connection per gateway process.

Channels are subscribed on demand with reference counts (``meeting:{id}:events``,
see ``vexa.events``), so a meeting nobody watches costs nothing and a thousand
watchers of one meeting cost one Redis subscription. Each message is decoded and
wrapped as an ASGI send message ONCE, and that same object is handed to every
watcher with a non-blocking ``offer``: nothing on the publish path awaits a
subscriber, and a watcher that cannot keep up is dropped instead of slowing the
others down.

``watch`` returns only once Redis has CONFIRMED the channel's subscription on the
live connection, for the first watcher of a channel and for every watcher that
joins while that confirmation is still due, so a client told "subscribed" gets
every event published after that. Confirmations are counted per channel: after a
SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE sequence only the second confirmation makes the
channel live again.

The reader loop survives Redis restarts: it reconnects with backoff and
re-subscribes every channel that still has watchers. Pub/sub is at-most-once,
so events published while Redis is away are lost (clients can re-fetch the
transcript over HTTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from vexa.events import meeting_channel
from vexa.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Always subscribed, so the connection stays in pub/sub mode even with no watchers.
KEEPALIVE_CHANNEL = "vexa:gateway:hub"
IDLE_PING_S = 10.0
SUBSCRIBE_CONFIRM_S = 5.0

Outgoing = Mapping[str, Any]  # an ASGI "websocket.send" message, shared by every watcher


class Watcher(Protocol):
    """What the hub needs from a client: a non-blocking put that may refuse."""

    def offer(self, message: Outgoing) -> bool:
        """Send or queue ``message``; False when the client is too slow (its backlog is full)."""
        ...


def outgoing(text: str) -> Outgoing:
    return {"type": "websocket.send", "text": text}


class EventHub:
    def __init__(self, redis: Redis, on_slow: Callable[[Watcher], None]) -> None:
        self._redis = redis
        self._on_slow = on_slow
        self._watchers: dict[str, set[Watcher]] = {}
        self._live: set[str] = set()  # channels whose subscription Redis confirmed on this connection
        self._due: Counter[str] = Counter()  # SUBSCRIBEs sent whose confirmation has not come yet
        self._ready: dict[str, asyncio.Future[None]] = {}  # set when the channel turns live
        self._pubsub: PubSub | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped = 0
        self.unconfirmed = 0  # subscribe requests refused because Redis did not confirm in time

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ws-event-hub")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._close_pubsub()

    @property
    def channel_count(self) -> int:
        return len(self._watchers)

    @property
    def subscription_count(self) -> int:
        """(watcher, meeting) pairs: what one published event costs in offers."""
        return sum(len(watchers) for watchers in self._watchers.values())

    # -- watchers ----------------------------------------------------------------------------

    async def watch(self, meeting_ids: Iterable[int], watcher: Watcher) -> list[int]:
        """Add ``watcher`` to these meetings; returns once each channel is live in Redis.

        Returns the meetings whose subscription Redis did not confirm within
        ``SUBSCRIBE_CONFIRM_S`` (Redis away): the watcher is taken off those again.
        """
        new: list[str] = []
        pending: dict[int, asyncio.Future[None]] = {}
        for meeting_id in meeting_ids:
            channel = meeting_channel(meeting_id)
            watchers = self._watchers.setdefault(channel, set())
            if not watchers:
                new.append(channel)
            watchers.add(watcher)
            if channel not in self._live:
                pending[meeting_id] = self._ready_future(channel)
        if new:
            await self._subscribe(new)
        if pending:
            await asyncio.wait(pending.values(), timeout=SUBSCRIBE_CONFIRM_S)
        late = [m for m, ready in pending.items() if not ready.done() or ready.cancelled()]
        if late:
            self.unconfirmed += len(late)
            self.forget(watcher, late)
        return late

    async def unwatch(self, meeting_id: int, watcher: Watcher) -> None:
        channel = meeting_channel(meeting_id)
        watchers = self._watchers.get(channel)
        if not watchers:
            return
        watchers.discard(watcher)
        if not watchers:
            self._remove(channel)
            await self._unsubscribe(channel)

    def forget(self, watcher: Watcher, meeting_ids: list[int]) -> None:
        """Synchronous removal (for dropped clients); empty channels are unsubscribed in the background."""
        for meeting_id in meeting_ids:
            channel = meeting_channel(meeting_id)
            watchers = self._watchers.get(channel)
            if watchers is None:
                continue
            watchers.discard(watcher)
            if not watchers:
                self._remove(channel)
                asyncio.get_running_loop().create_task(self._unsubscribe(channel))

    def _remove(self, channel: str) -> None:
        del self._watchers[channel]
        ready = self._ready.pop(channel, None)
        if ready is not None:
            ready.cancel()

    def _ready_future(self, channel: str) -> asyncio.Future[None]:
        ready = self._ready.get(channel)
        if ready is None:
            ready = self._ready[channel] = asyncio.get_running_loop().create_future()
        return ready

    # -- Redis -------------------------------------------------------------------------------

    async def _subscribe(self, channels: list[str]) -> None:
        async with self._lock:
            pubsub = self._pubsub
            # Still watched (not left meanwhile); not connected: the reader subscribes them on reconnect.
            channels = [c for c in channels if c in self._watchers]
            if pubsub is None or not channels:
                return
            self._due.update(channels)
            try:
                await pubsub.subscribe(*channels)
            except Exception as exc:
                log.warning("redis subscribe failed (%s); will retry on reconnect", type(exc).__name__)

    async def _unsubscribe(self, channel: str) -> None:
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None or channel in self._watchers:  # re-watched meanwhile
                return
            self._live.discard(channel)
            try:
                await pubsub.unsubscribe(channel)
            except Exception as exc:
                log.warning("redis unsubscribe failed (%s); will retry on reconnect", type(exc).__name__)

    def _confirmed(self, channel: str) -> None:
        """A 'subscribe' reply: the channel is live once every SUBSCRIBE sent for it is answered."""
        self._due[channel] -= 1
        if self._due[channel] > 0:
            return
        del self._due[channel]
        if channel in self._watchers:
            self._live.add(channel)
            ready = self._ready.pop(channel, None)
            if ready is not None and not ready.done():
                ready.set_result(None)

    async def _close_pubsub(self) -> None:
        async with self._lock:
            pubsub, self._pubsub = self._pubsub, None
            self._live.clear()
            self._due.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                pubsub = self._redis.pubsub()
                async with self._lock:
                    self._live.clear()
                    self._due = Counter(list(self._watchers))  # one confirmation due per channel
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
            elif kind == "subscribe" and channel != KEEPALIVE_CHANNEL:
                self._confirmed(channel)

    def _dispatch(self, channel: str, data: bytes | str) -> None:
        watchers = self._watchers.get(channel)
        if not watchers:
            return
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        message = outgoing(text)  # one object for every watcher: encoded once, not per subscriber
        slow: list[Watcher] = []
        for watcher in list(watchers):
            if watcher.offer(message):
                self.delivered += 1
            else:
                slow.append(watcher)
        for watcher in slow:
            self.dropped += 1
            self._on_slow(watcher)
