"""One WebSocket subscriber as the event hub sees it: a send that happens NOW when it can.

Fanning one event out to 10,000 sockets used to cost a queue put, a task wake-up
and a trip through the ASGI send chain per subscriber, and left a waiting future
per client per event for the garbage collector. Here ``offer`` steps the ASGI send
coroutine synchronously (``run_eagerly``): while the socket's transport accepts
data, which is almost always, the frame is written before ``offer`` returns and
nothing is scheduled. Only when the transport pushes back (the peer reads slowly)
does the rest of that send, and whatever arrives after it, go to a per-client
backlog drained by a task of its own; a backlog at ``queue_size`` means the client
is too slow, and the hub drops it.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from vexa.auth import AuthenticatedUser
from vexa.gateway.hub import Outgoing, outgoing

# Why a socket's session ends, set once by whoever notices first.
SLOW, GONE, REVOKED, EXPIRED = "slow", "gone", "revoked", "expired"


class _Resume:
    """Awaitable that carries on a coroutine which ``run_eagerly`` started and which suspended."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        self._coro, self._yielded = coro, yielded

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._yielded
        while True:  # what ``yield from coro`` does, from the point where it suspended
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation is passed into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return


def run_eagerly(coro: Coroutine[Any, Any, None]) -> Awaitable[None] | None:
    """Run ``coro`` in the caller's frame up to its first suspension (what Python 3.12's eager
    tasks do). None when it finished; else an awaitable that finishes it. Its errors propagate."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return _Resume(coro, yielded)


class Client:
    """One WebSocket connection: sends in place, a bounded backlog only while the peer lags."""

    __slots__ = ("_backlog", "_flusher", "_send", "ended", "queue_size", "subscriptions", "user")

    def __init__(
        self,
        send: Callable[[Outgoing], Coroutine[Any, Any, None]],
        user: AuthenticatedUser,
        queue_size: int,
    ) -> None:
        self.user = user
        self.queue_size = queue_size
        # (platform, native_id) -> meeting db id
        self.subscriptions: dict[tuple[str, str], int] = {}
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._send = send
        self._backlog: deque[Outgoing] | None = None  # not None while a send is in flight
        self._flusher: asyncio.Task[None] | None = None

    def end(self, reason: str) -> None:
        """Ask the endpoint to close this socket (the first reason wins)."""
        if not self.ended.done():
            self.ended.set_result(reason)

    def offer(self, message: Outgoing) -> bool:
        """Send now or queue (the hub's side; never awaits); False means the client is too slow."""
        if self.ended.done():
            return True  # already on its way out; not a new drop
        backlog = self._backlog
        if backlog is not None:
            if len(backlog) >= self.queue_size:
                return False
            backlog.append(message)
            return True
        try:
            rest = run_eagerly(self._send(message))
        except Exception:  # the socket is closed or broken: the endpoint ends the session
            self.end(GONE)
            return True
        if rest is not None:
            self._backlog = deque()
            self._flusher = asyncio.get_running_loop().create_task(self._flush(rest), name="ws-backlog")
        return True

    def reply(self, message: dict[str, Any]) -> None:
        if not self.offer(outgoing(json.dumps(message))):
            self.end(SLOW)

    def meeting_ids(self) -> list[int]:
        return list(set(self.subscriptions.values()))

    def cancel_backlog(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()

    async def _flush(self, rest: Awaitable[None]) -> None:
        backlog = self._backlog
        assert backlog is not None
        try:
            await rest
            while backlog:
                await self._send(backlog.popleft())
        except Exception:
            self.end(GONE)
        finally:
            self._backlog = None
            self._flusher = None
