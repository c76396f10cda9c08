"""The bot's line to its Chromium: the DevTools protocol over the pipe Chromium is started with.

Why not Playwright (which the bot used before): Playwright drives Chromium through a node process
of its own that relays every protocol message, and a bot's node driver was a quarter of its
memory (~106 MiB) and a sixth of its CPU; a bot asks its page a few questions a second, which
needs no second runtime. Why a pipe and not a WebSocket port (what the Python CDP clients on PyPI
speak): with ``--remote-debugging-pipe`` nothing listens, so no other local process can attach to
a meeting's browser, and there is no port to find or race for. The wire format is one JSON object
per message, each ended by a NUL byte (Chromium's ``DevToolsPipeHandler``).

Messages carry a ``sessionId`` once attached to a page (flat sessions): commands for the page go
out with it, and its events come back with it.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger("vexa.bot.cdp")

Handler = Callable[[dict[str, Any]], None]


class CdpError(Exception):
    """A protocol command failed, or the browser went away before answering."""


class CdpConnection:
    """Commands out, answers and events in, over Chromium's pipe (fd 3 in, fd 4 out for it).

    ``send`` awaits the answer to one command; ``on`` subscribes to an event of one session.
    ``received`` counts what the browser sent, by event name (answers under ``""``): a bot's audio
    must never show up there (tests/bot/test_bot_audio_transport.py).
    """

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self._to_browser = to_browser
        self._from_browser = from_browser
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._handlers: dict[tuple[str | None, str], list[Handler]] = {}
        self._buffer = bytearray()
        self._open = False  # reading, from start() until close()
        self.received: collections.Counter[str] = collections.Counter()

    def start(self) -> None:
        """Read what the browser sends, on the running loop (the fd is made non-blocking)."""
        loop = asyncio.get_running_loop()
        self._open = True
        os.set_blocking(self._from_browser, False)
        os.set_blocking(self._to_browser, False)
        loop.add_reader(self._from_browser, self._readable)

    @property
    def closed(self) -> bool:
        return not self._open

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its ``result``; raise ``CdpError`` on an ``error`` answer."""
        if self.closed:
            raise CdpError(f"{method}: the browser is gone")
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        # Written before its answer is awaited: a failed write raises here, with nothing left pending
        # (the answer cannot arrive before this coroutine yields to the loop).
        self._write(json.dumps(message, separators=(",", ":")).encode() + b"\0")
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = answer
        try:
            return await answer
        finally:
            self._pending.pop(message["id"], None)

    def on(self, method: str, handler: Handler, session_id: str | None = None) -> None:
        """Call ``handler(params)`` for each ``method`` event of ``session_id`` (None: the browser's)."""
        self._handlers.setdefault((session_id, method), []).append(handler)

    def close(self) -> None:
        """Stop reading and fail whatever still waits for an answer; the fds are closed."""
        if self._open:
            self._open = False
            asyncio.get_running_loop().remove_reader(self._from_browser)
            for fd in (self._from_browser, self._to_browser):
                os.close(fd)
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(CdpError("the browser is gone"))

    def _write(self, data: bytes) -> None:
        # Commands are small (< a few KiB) and few; the pipe's 64 KiB buffer takes each at once. A
        # full pipe means a browser that stopped reading: waiting would hang the bot, so it fails.
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._to_browser, view)
            except BlockingIOError as exc:
                raise CdpError("the browser stopped reading its pipe") from exc
            except OSError as exc:
                self.close()
                raise CdpError(f"the browser's pipe is closed: {exc}") from exc
            view = view[written:]

    def _readable(self) -> None:
        try:
            chunk = os.read(self._from_browser, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        self._buffer += chunk
        while (end := self._buffer.find(b"\0")) >= 0:
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict[str, Any]) -> None:
        self.received[message.get("method", "")] += 1
        if "id" in message:
            answer = self._pending.get(message["id"])
            if answer is None or answer.done():
                return
            if "error" in message:
                error = message["error"]
                detail = f": {error['data']}" if error.get("data") else ""
                answer.set_exception(CdpError(f"{error.get('message', error)}{detail}"))
            else:
                answer.set_result(message.get("result", {}))
            return
        for handler in self._handlers.get((message.get("sessionId"), message.get("method", "")), ()):
            try:
                handler(message.get("params", {}))
            except Exception:
                log.exception("handler for %s failed", message.get("method"))
