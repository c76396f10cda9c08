"""Recording STAND-INS for the services around a bot, for tests and benches.

- ``RecordingTranscriptionServer``: a WebSocket endpoint speaking the transcription
  service's input protocol that only *records* what a bot sends (config, audio
  samples, text messages, END_OF_AUDIO). It transcribes nothing. Use the real
  ``vexa serve transcription`` wherever transcripts matter.
- ``CallbackRecorder``: an HTTP endpoint standing in for the bot-manager's
  ``/bots/internal/callback/status``; it records status callbacks.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


@dataclass
class RecordedSession:
    config: dict[str, Any]
    opened_at: float
    chunks: list[bytes] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    closed_at: float | None = None

    @property
    def uid(self) -> str:
        return str(self.config.get("uid"))

    @property
    def speaker(self) -> str | None:
        return self.config.get("speaker")

    @property
    def samples(self) -> int:
        return sum(len(c) for c in self.chunks) // 4

    def audio(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.chunks), dtype="<f4")


class RecordingTranscriptionServer:
    """Stand-in transcription endpoint (records, never transcribes); runs in the caller's event loop."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.sessions: list[RecordedSession] = []
        self._server: Server | None = None
        self.close_after_samples: int | None = None
        """When set, the next session is closed (cleanly) once it has received this many samples."""
        self.close_speaker: str | None = None
        """When set, only a session of this participant (config ``speaker``) is closed that way."""

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> RecordingTranscriptionServer:
        self._server = await serve(self._handle, self.host, self.port, max_size=2**22)
        return self

    async def stop(self) -> None:
        """Stop like a restarting service: close connections with a handshake, keep what was read."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            first = await ws.recv()
        except ConnectionClosed:
            return
        session = RecordedSession(config=json.loads(first), opened_at=time.time())
        self.sessions.append(session)
        await ws.send(json.dumps({"uid": session.uid, "message": "SERVER_READY", "backend": "stand-in"}))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    if message == b"END_OF_AUDIO":
                        session.ended = True
                        continue
                    session.chunks.append(message)
                    limit = self.close_after_samples
                    targeted = self.close_speaker is None or session.speaker == self.close_speaker
                    if limit is not None and targeted and session.samples >= limit:
                        self.close_after_samples = None
                        await ws.close(1012, "service restart (stand-in)")
                else:
                    session.texts.append(json.loads(message))
        except ConnectionClosed:
            pass
        finally:
            session.closed_at = time.time()

    def by_speaker(self) -> dict[str | None, list[RecordedSession]]:
        out: dict[str | None, list[RecordedSession]] = {}
        for s in self.sessions:
            out.setdefault(s.speaker, []).append(s)
        return out


class CallbackRecorder:
    """Stand-in for the bot-manager's status callback endpoint (uvicorn in a thread)."""

    def __init__(self, port: int, token: str = "cb-token", host: str = "127.0.0.1") -> None:
        self.host, self.port, self.token = host, port, token
        self.calls: list[dict[str, Any]] = []
        self.refused = 0

        async def status(request: Request) -> JSONResponse:
            if request.headers.get("x-bot-token") != self.token:
                self.refused += 1
                return JSONResponse({"detail": "bad bot token"}, 403)
            self.calls.append(await request.json())
            return JSONResponse({"ok": True})

        app = Starlette(routes=[Route("/bots/internal/callback/status", status, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def statuses(self) -> list[str]:
        return [c["status"] for c in self.calls]

    def start(self) -> CallbackRecorder:
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="callback-recorder")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    async def wait_for(self, status: str, within_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            for call in self.calls:
                if call["status"] == status:
                    return call
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no {status!r} callback within {within_s}s; got {self.statuses()}")
