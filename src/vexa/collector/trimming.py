"""Keeping the input streams short without losing a message, and measuring how far behind we are.

A producer-side ``XADD MAXLEN ~N`` trims by length, blind to the consumer group:
during a collector outage under load it deletes entries nobody has read, and the
returning collector acknowledges their ids as if handled. So producers no longer
trim. The collector, which knows its groups, removes only what every group has
finished with: ``XTRIM MINID`` up to the oldest entry some group still needs (its
oldest pending entry, else the first one after its last-delivered id). A stream
with no group is never trimmed: nobody has read it yet.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from vexa.collector.consumer import is_transient
from vexa.streams import entry_order
from vexa.tasks import raise_if_cancelled

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamLag:
    """One stream as its slowest group sees it."""

    length: int
    lag: int | None  # entries not yet delivered to the slowest group (None: the server cannot tell)
    pending: int  # delivered but not yet acknowledged, all groups together
    trimmed: int  # entries removed by the last trim

    def as_dict(self) -> dict[str, int | None]:
        return {"length": self.length, "lag": self.lag, "pending": self.pending, "trimmed": self.trimmed}


def _next_id(entry_id: str) -> str:
    ms, seq = entry_order(entry_id)
    return f"{ms}-{seq + 1}"


def _older(a: str, b: str) -> str:
    return a if entry_order(a) <= entry_order(b) else b


async def keep_from(redis: Redis, stream: str) -> str | None:
    """The oldest id any group still needs; None when the stream has no group (trim nothing)."""
    groups = await redis.xinfo_groups(stream)
    if not groups:
        return None
    oldest: str | None = None
    for group in groups:
        needed = _next_id(str(group["last-delivered-id"]))
        if int(group.get("pending") or 0) > 0:
            # Read after XINFO: the pending entries may all be acknowledged by now (min is None),
            # and the last-delivered id read above is then still a safe bound.
            summary = await redis.xpending(stream, group["name"])
            if summary.get("min"):
                needed = _older(str(summary["min"]), needed)
        oldest = needed if oldest is None else _older(oldest, needed)
    return oldest


async def trim_and_measure(redis: Redis, stream: str) -> StreamLag:
    """Remove what every group has acknowledged; report length, lag and pending afterwards."""
    try:
        needed = await keep_from(redis, stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return StreamLag(0, 0, 0, 0)
        raise
    trimmed = int(await redis.xtrim(stream, minid=needed)) if needed is not None else 0
    return await measure(redis, stream, trimmed)


async def measure(redis: Redis, stream: str, trimmed: int = 0) -> StreamLag:
    """Length, lag of the slowest group and pending count (read-only)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return StreamLag(0, 0, 0, trimmed)
        raise
    length = int(await redis.xlen(stream))
    lags = [g.get("lag") for g in groups]
    lag = None if not groups or any(v is None for v in lags) else max(int(v) for v in lags)  # type: ignore[arg-type]
    pending = sum(int(g.get("pending") or 0) for g in groups)
    return StreamLag(length, lag, pending, trimmed)


class StreamTrimmer:
    """Every ``interval_s``: trim each stream to what its groups still need, and remember the lag."""

    def __init__(self, redis: Redis, streams: list[str], *, interval_s: float) -> None:
        self.redis = redis
        self.streams = streams
        self.interval_s = interval_s
        self.last: dict[str, StreamLag] = {}

    async def run_once(self) -> dict[str, StreamLag]:
        for stream in self.streams:
            self.last[stream] = result = await trim_and_measure(self.redis, stream)
            if result.trimmed:
                log.debug("%s: trimmed %d acknowledged entries", stream, result.trimmed)
        return self.last

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = logging.WARNING if is_transient(exc) else logging.ERROR
                log.log(level, "stream trim failed (nothing removed): %s", exc, exc_info=True)
            raise_if_cancelled()
            await asyncio.sleep(self.interval_s)
