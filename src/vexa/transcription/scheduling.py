"""Which waiting decode runs next: finals before drafts.

Why: with several people speaking at once, every session keeps one decode queued
and the worker pool is the bottleneck. A draft only refreshes what is shown while
someone talks; a final decode is what lets an utterance be committed. Served first
come, first served, a final waits behind other sessions' drafts and commit latency
grows with every extra speaker; served first, it waits at most for the decodes
already running, and drafts soak up whatever capacity is left.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

FINAL = 0  # lower runs first
DRAFT = 1


class PriorityGate:
    """At most ``slots`` holders at once; waiters are admitted by (priority, arrival)."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    @property
    def queued(self) -> int:
        return sum(1 for *_, fut in self._waiting if not fut.done())

    @asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        if self.free > 0 and not self.queued:
            self.free -= 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (priority, next(self._arrival), fut))
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._release()  # granted just as we were cancelled: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            *_, fut = heapq.heappop(self._waiting)
            if not fut.done():  # a cancelled waiter's future is done: skip it
                fut.set_result(None)
                return
        self.free += 1
