"""The transcription server: WebSocket on ``port`` (paths ``/`` and ``/ws``), health on ``HEALTH_PORT``.

Health is a separate port so load balancers can probe it without speaking
WebSocket: ``GET /health`` answers 200 while the model is loaded and a session
slot is free, 503 when full (so Traefik sends new connections elsewhere).

A slot is only given to a client that proves which meeting it serves: its
first message carries a bot token (``vexa.bot_tokens``) for that meeting, checked
in Redis before anything else. ``WL_STANDALONE=true`` serves anonymous
WhisperLive clients too (the server as a drop-in WhisperLive replacement).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import numpy as np
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from vexa import bot_tokens
from vexa import metrics as exposition
from vexa.streams import SpeakerEvent
from vexa.transcription import metrics
from vexa.transcription.engine import WhisperEngine
from vexa.transcription.protocol import ProtocolError, SessionConfig, error, parse_config, wait
from vexa.transcription.publisher import StreamPublisher
from vexa.transcription.session import Session, SessionServices, reject
from vexa.transcription.settings import TranscriptionSettings
from vexa.transcription.vad import FRAME, SILENT_PEAK, Scorer, score_block, silero_scorer

log = logging.getLogger(__name__)

WS_PATHS = ("/", "/ws")
FIRST_MESSAGE_TIMEOUT_S = 15.0


class TranscriptionServer:
    def __init__(self, settings: TranscriptionSettings, engine: WhisperEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions: dict[str, Session] = {}
        self.publisher: StreamPublisher | None = None
        self._redis: Redis | None = None  # bot-token checks
        self.total_sessions = 0
        self._ws_server: Server | None = None
        self._health_server: asyncio.Server | None = None
        self.port: int | None = None
        self.health_port: int | None = None
        self._started = time.monotonic()
        # VAD has its own thread so scoring speech never waits behind a Whisper decode.
        self._vad_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")
        self._scorer: Scorer | None = None
        self.speech_scoring_s = 0.0

    async def score_speech(self, block: np.ndarray) -> np.ndarray:
        if float(np.abs(block).max()) < SILENT_PEAK:
            return np.zeros(len(block) // FRAME, dtype=np.float32)  # digital silence: no thread hop
        if self._scorer is None:
            self._scorer = silero_scorer()
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        probs = await loop.run_in_executor(self._vad_executor, score_block, block, self._scorer)
        self.speech_scoring_s += time.perf_counter() - started
        return probs

    def _services(self) -> SessionServices:
        have_redis = self.publisher is not None
        return SessionServices(
            settings=self.settings,
            decode=self.engine.decode,
            score_speech=self.score_speech,
            multilingual=self.engine.multilingual,
            publish_segments=self.publish_segments if have_redis else None,
            publish_speaker=self.publish_speaker if have_redis else None,
        )

    # ---- startup / shutdown -----------------------------------------------------------
    async def start(self, host: str, port: int) -> None:
        s = self.settings
        self._scorer = await asyncio.get_running_loop().run_in_executor(self._vad_executor, silero_scorer)
        if s.has_redis():
            self.publisher = StreamPublisher(s.redis_url(), max_buffered=s.publish_buffer_max)
            self.publisher.start()
            self._redis = Redis.from_url(s.redis_url(), decode_responses=True)
        else:
            log.warning("no REDIS_URL: sessions with meeting context will be refused (nothing to publish to)")
        if s.standalone:
            log.warning(
                "WL_STANDALONE: clients without a bot token are served (WhisperLive-replacement mode)"
            )
        elif self._redis is None:
            log.warning(
                "no REDIS_URL and not WL_STANDALONE: no bot token can be checked, every client is refused"
            )
        self._ws_server = await serve(
            self._handle,
            host,
            port,
            process_request=self._check_path,
            max_size=2**22,
            ping_interval=20,
            ping_timeout=60,
        )
        self.port = self._ws_server.sockets[0].getsockname()[1]
        self._health_server = await asyncio.start_server(self._health, s.health_host or host, s.health_port)
        self.health_port = self._health_server.sockets[0].getsockname()[1]
        log.info(
            "transcription listening on ws://%s:%s (health :%s/health)", host, self.port, self.health_port
        )

    async def stop(self, grace_s: float = 15.0) -> None:
        """Stop accepting, let sessions flush their tails, drain the publisher."""
        if self._ws_server is not None:
            self._ws_server.close(close_connections=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ws_server.wait_closed(), grace_s)
        if self._health_server is not None:
            self._health_server.close()
        if self.publisher is not None:
            await self.publisher.close()
        if self._redis is not None:
            await self._redis.aclose()
        self.engine.shutdown()
        self._vad_executor.shutdown(wait=False, cancel_futures=True)

    # ---- WebSocket ----------------------------------------------------------------------
    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path not in WS_PATHS:
            return connection.respond(HTTPStatus.NOT_FOUND, "WebSocket paths are / and /ws\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            raw = await asyncio.wait_for(ws.recv(), FIRST_MESSAGE_TIMEOUT_S)
        except TimeoutError:
            await reject(ws, None, error(None, "no session config received within 15 s"))
            return
        except Exception:
            return  # closed before saying anything
        try:
            config = parse_config(raw)
        except ProtocolError as exc:
            uid = _uid_of(raw)
            log.info("rejected session %s: %s", uid, exc)
            await reject(ws, uid, error(uid, str(exc)))
            return
        problem = await self._unauthorized(config) or self._refusal(config)
        if problem:
            log.info("rejected session %s: %s", config.uid, problem)
            await reject(ws, config.uid, error(config.uid, problem))
            return
        if len(self.sessions) >= self.settings.max_clients:
            minutes = self._wait_minutes()
            log.info(
                "server full (%d sessions): %s must wait ~%.1f min", len(self.sessions), config.uid, minutes
            )
            await reject(ws, config.uid, wait(config.uid, minutes))
            return
        session = Session(self._services(), ws, config)
        self.sessions[config.uid] = session
        self.total_sessions += 1
        metrics.SESSIONS_TOTAL.inc()
        log.info(
            "session %s open (platform=%s meeting=%s language=%s task=%s publishing=%s)",
            config.uid,
            config.platform,
            config.meeting_id,
            config.language or "auto",
            config.task,
            session.publishing,
        )
        if config.model and config.model not in (self.settings.whisper_model, self.engine.model_path):
            log.info(
                "session %s asked for model %r; using the loaded %s",
                config.uid,
                config.model,
                self.settings.whisper_model,
            )
        try:
            await session.run()
        except Exception:
            log.exception("session %s failed", config.uid)
        finally:
            self.sessions.pop(config.uid, None)

    async def _unauthorized(self, config: SessionConfig) -> str | None:
        """Why this client may not take a slot, or None. Runs before the capacity check, so
        anonymous clients can never hold the slots bots need."""
        presented = bot_tokens.is_bot_token(config.token)
        if not presented and self.settings.standalone:
            return None
        if not presented:
            return "this server serves Vexa bots only: the session config needs the bot's meeting token"
        if self._redis is None:
            return "this server has no Redis configured, so it cannot check bot tokens"
        try:
            claims = await bot_tokens.lookup(self._redis, config.token)
        except RedisError as exc:
            log.warning("cannot check a bot token: Redis %s", type(exc).__name__)
            return "cannot check the bot token right now; retry"
        if claims is None or claims.ended:
            return "unknown, expired or ended bot token"
        if not claims.covers(config.platform, config.meeting_id, config.meeting_db_id):
            return "this bot token is for another meeting"
        if config.meeting_db_id is None:
            config.meeting_db_id = claims.meeting_id
        return None

    def _refusal(self, config: SessionConfig) -> str | None:
        if config.uid in self.sessions:
            return f"uid {config.uid!r} is already in use by an open session"
        if self.settings.require_meeting_context and not config.has_meeting_context:
            return "this server requires meeting context: platform, meeting_id and token"
        if config.has_meeting_context and self.publisher is None:
            return "this server has no Redis configured, so it cannot publish meeting transcripts"
        return None

    def _wait_minutes(self) -> float:
        now = time.monotonic()
        soonest = min((s.deadline for s in self.sessions.values()), default=now)
        return max(0.0, (soonest - now) / 60)

    # ---- publishing ---------------------------------------------------------------------
    def publish_segments(self, message: BaseModel) -> None:
        if self.publisher is not None:
            self.publisher.publish(self.settings.redis_stream_name, message)

    def publish_speaker(self, event: SpeakerEvent) -> None:
        if self.publisher is not None:
            self.publisher.publish(self.settings.speaker_stream_name, event)

    # ---- health -------------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, object]]:
        active = len(self.sessions)
        capacity = self.settings.max_clients
        status = "loading" if not self.engine.loaded else "ok" if active < capacity else "full"
        body: dict[str, object] = {
            "status": status,
            "model": self.settings.whisper_model,
            "model_loaded": self.engine.loaded,
            "device": self.engine.device,
            "active_sessions": active,
            "capacity": capacity,
            "available": max(0, capacity - active),
            "total_sessions": self.total_sessions,
            "decodes_in_flight": self.engine.busy,
            "decodes_queued": self.engine.queued,
            "decodes": self.engine.decodes,
            "full_window_retries": self.engine.full_window_retries,
            "speech_scoring_seconds": round(self.speech_scoring_s, 2),
            "decode_seconds": round(self.engine.decode_seconds, 2),
            "redis": None if self.publisher is None else self.publisher.healthy,
            "publish_backlog": 0 if self.publisher is None else self.publisher.backlog,
            "uptime_s": round(time.monotonic() - self._started, 1),
        }
        return (200 if status == "ok" else 503), body

    def metrics(self) -> bytes:
        """Prometheus text: gauges read from the server's state now, counters as they moved."""
        metrics.SLOTS_IN_USE.set(len(self.sessions))
        metrics.SLOTS_CAPACITY.set(self.settings.max_clients)
        metrics.DECODES_IN_FLIGHT.set(self.engine.busy)
        metrics.PUBLISH_BACKLOG.set(0 if self.publisher is None else self.publisher.backlog)
        return exposition.exposition()

    async def _health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 and parts[0] in ("GET", "HEAD") else None
            content_type = "application/json"
            if path == "/health":
                code, body = self.health()
                data = json.dumps(body).encode()
            elif path == "/metrics":
                code, data, content_type = 200, self.metrics(), exposition.CONTENT_TYPE
            else:
                code, data = 404, json.dumps({"detail": "only GET /health and /metrics live here"}).encode()
            reason = HTTPStatus(code).phrase
            head = (
                f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            ).encode()
            writer.write(head + (data if parts and parts[0] != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _uid_of(raw: str | bytes) -> str | None:
    with contextlib.suppress(Exception):
        uid = json.loads(raw).get("uid")
        return uid if isinstance(uid, str) else None
    return None
