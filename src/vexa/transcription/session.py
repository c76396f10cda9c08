"""One WebSocket connection: read audio and events, decode in the pool, answer and publish.

Reading and decoding are two tasks so a slow decode never stops the socket from
draining (the bot confirms audio with pings). Whatever ends the session — the
client's ``END_OF_AUDIO``, a dropped connection, ``max_connection_time`` — the
audio already received is decoded to the end and published, because the bot
only re-sends audio the server did not confirm.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ValidationError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from vexa.streams import Segment, SessionEndMessage, SessionStartMessage, SpeakerEvent, TranscriptionMessage
from vexa.transcription.engine import DecodeOptions, WhisperEngine
from vexa.transcription.protocol import (
    END_OF_AUDIO,
    ProtocolError,
    SessionConfig,
    SessionControl,
    describe,
    error,
    ready,
)
from vexa.transcription.publisher import StreamPublisher
from vexa.transcription.settings import TranscriptionSettings
from vexa.transcription.streaming import SAMPLE_RATE, DecodeJob, OutSegment, StreamingTranscriber


class SessionHost(Protocol):
    """What a session needs from the server that accepted it.

    A protocol rather than ``TranscriptionServer`` itself, so this module does not
    import server.py (which imports this one to create sessions).
    """

    settings: TranscriptionSettings
    engine: WhisperEngine
    publisher: StreamPublisher | None

    def publish_segments(self, message: BaseModel) -> None: ...

    def publish_speaker(self, event: SpeakerEvent) -> None: ...


log = logging.getLogger(__name__)

MAX_ABS_SAMPLE = 64.0  # float audio lives in [-1, 1]; far beyond means int16 bytes sent as float


class Session:
    def __init__(self, server: SessionHost, ws: ServerConnection, config: SessionConfig) -> None:
        s = server.settings
        self.server = server
        self.ws = ws
        self.config = config
        self.uid = config.uid
        vad = config.vad_parameters
        min_silence = (vad.min_silence_duration_ms if vad else None) or s.end_silence_ms
        pad = min((vad.speech_pad_ms if vad and vad.speech_pad_ms is not None else 100), min_silence // 2)
        self.options = DecodeOptions(
            use_vad=config.use_vad,
            vad_threshold=vad.threshold if vad else s.vad_threshold,
            min_silence_ms=min_silence,
            speech_pad_ms=pad,
            no_speech_thresh=s.no_speech_thresh
            if config.no_speech_thresh is None
            else config.no_speech_thresh,
            hotwords=config.hotwords,
            beam_size=s.beam_size,
        )
        self.transcriber = StreamingTranscriber(
            language=config.language if server.engine.multilingual else "en",
            task=config.task,
            initial_prompt=config.initial_prompt,
            min_chunk_s=s.min_chunk_s,
            max_buffer_s=s.max_buffer_s,
            end_silence_s=(min_silence - pad) / 1000,
        )
        self.last_n = config.send_last_n_segments or s.send_last_n_segments
        limit = min(config.max_connection_time or s.max_connection_time, s.max_connection_time)
        self.opened = time.monotonic()
        self.deadline = self.opened + limit
        self.publishing = server.publisher is not None and config.has_meeting_context
        self.start_wall: float | None = None
        self._audio = asyncio.Event()
        self._ended = False
        self._client_gone = False
        self.end_reason = "open"

    # ---- lifecycle --------------------------------------------------------------------
    async def run(self) -> None:
        await self._send(ready(self.uid))
        decoder = asyncio.create_task(self._decode_loop(), name=f"decode-{self.uid}")
        try:
            self.end_reason = await self._read_loop()
        finally:
            self._ended = True
            self._audio.set()
            try:
                await decoder
            except Exception:
                log.exception("session %s: final decode failed", self.uid)
            self._publish_end()
        if self.end_reason == "max_connection_time":
            await self._send(json.dumps({"uid": self.uid, "message": "DISCONNECT"}))
        with contextlib.suppress(Exception):
            await self.ws.close()
        log.info(
            "session %s ended (%s): %.1fs audio, %d decodes, %d segments",
            self.uid,
            self.end_reason,
            self.transcriber.duration,
            self.transcriber.decodes,
            len(self.transcriber.completed),
        )

    async def _read_loop(self) -> str:
        remaining = self.deadline - time.monotonic()
        try:
            async with asyncio.timeout(remaining):
                async for message in self.ws:
                    if isinstance(message, bytes):
                        if message == END_OF_AUDIO:
                            return "end_of_audio"
                        problem = self._add_audio(message)
                        if problem:
                            await self._send(error(self.uid, problem))
                            return "bad_audio"
                    elif message.strip() == END_OF_AUDIO.decode():
                        return "end_of_audio"
                    else:
                        await self._on_text(message)
        except TimeoutError:
            return "max_connection_time"
        except ConnectionClosed:
            pass
        self._client_gone = True
        return "disconnected"

    # ---- audio ------------------------------------------------------------------------
    def _add_audio(self, data: bytes) -> str | None:
        if len(data) % 4:
            return (
                f"binary frames must be float32 mono 16 kHz PCM; got {len(data)} bytes, not a multiple of 4"
            )
        samples = np.frombuffer(data, dtype="<f4")
        if len(samples) == 0:
            return None
        if not np.isfinite(samples).all():
            return "binary frames must be float32 PCM; this frame holds NaN or infinite values"
        if float(np.abs(samples).max()) > MAX_ABS_SAMPLE:
            return (
                "binary frames must be float32 PCM in [-1, 1]; values this large look like "
                "int16 samples sent as float32"
            )
        if self.start_wall is None:
            self.start_wall = time.time() - len(samples) / SAMPLE_RATE
            self._publish_start()
        self.transcriber.add_audio(samples)
        if self.transcriber.due():
            self._audio.set()
        return None

    async def _decode_loop(self) -> None:
        t = self.transcriber
        while not self._ended:
            await self._audio.wait()
            self._audio.clear()
            if self._ended:
                break
            if t.due():
                job = t.make_job()
                if job is not None:
                    await self._decode(job)
        job = t.make_job(final=True)
        if job is not None:
            await self._decode(job)
        self._emit(t.finish())

    async def _decode(self, job: DecodeJob) -> None:
        try:
            outcome = await self.server.engine.decode(job, self.options)
        except Exception:
            log.exception("session %s: decode failed; skipping this chunk", self.uid)
            return
        changes, detected = self.transcriber.apply(job, outcome.speech, outcome.result, outcome.skipped)
        if detected:
            await self._send(
                json.dumps(
                    {
                        "uid": self.uid,
                        "language": self.transcriber.language,
                        "language_prob": self.transcriber.language_probability,
                    }
                )
            )
        self._emit(changes)
        if changes and not self._client_gone:
            payload = [self._segment_json(s) for s in self.transcriber.snapshot(self.last_n)]
            await self._send(json.dumps({"uid": self.uid, "segments": payload}))

    def _emit(self, changes: list[OutSegment]) -> None:
        """Publish changed segments (the socket gets a full snapshot separately)."""
        if not changes:
            return
        if not self.publishing:
            return
        self._ensure_started()
        segments = [Segment(**self._segment_json(s)) for s in changes]
        self.server.publish_segments(self._context(TranscriptionMessage, segments=segments))

    def _segment_json(self, seg: OutSegment) -> dict[str, Any]:
        data = seg.as_dict()
        if self.config.speaker:
            data["speaker"] = self.config.speaker
        return data

    # ---- text messages ----------------------------------------------------------------
    async def _on_text(self, raw: str) -> None:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            await self._warn("ignored a text message that is not JSON")
            return
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "speaker_activity":
            await self._speaker_activity(data)
        elif kind == "session_control":
            try:
                control = SessionControl.model_validate(data)
            except ValidationError as exc:
                await self._warn(describe(exc).replace("session config", "session_control"))
                return
            if "language" in data:
                self.transcriber.language = control.language
            if control.task:
                self.transcriber.task = control.task
            log.info("session %s reconfigured: language=%s task=%s", self.uid, control.language, control.task)
        elif kind == "audio_chunk_metadata":
            pass  # informational only (WhisperLive extension)
        else:
            log.debug("session %s: ignored text message of type %r", self.uid, kind)

    async def _speaker_activity(self, data: dict[str, Any]) -> None:
        if not self.publishing:
            return  # no meeting to attribute it to
        try:
            event = SpeakerEvent.model_validate(
                {
                    **data,
                    "uid": self.uid,
                    "platform": self.config.platform,
                    "meeting_id": self.config.meeting_id,
                    "token": self.config.token,
                }
            )
        except ValidationError as exc:
            await self._warn(describe(exc).replace("session config", "speaker_activity"))
            return
        self.server.publish_speaker(event)

    async def _warn(self, message: str) -> None:
        await self._send(json.dumps({"uid": self.uid, "status": "WARNING", "message": message}))

    # ---- stream messages --------------------------------------------------------------
    def _context(self, cls: type, **fields: Any) -> Any:
        return cls(
            uid=self.uid,
            platform=self.config.platform,
            meeting_id=self.config.meeting_id,
            meeting_db_id=self.config.meeting_db_id,
            token=self.config.token,
            **fields,
        )

    def _publish_start(self) -> None:
        if self.publishing and self.start_wall is not None:
            started = datetime.fromtimestamp(self.start_wall, UTC)
            self.server.publish_segments(self._context(SessionStartMessage, start_timestamp=started))

    def _ensure_started(self) -> None:
        if self.start_wall is None:
            self.start_wall = time.time()
            self._publish_start()

    def _publish_end(self) -> None:
        if self.publishing:
            self._ensure_started()
            self.server.publish_segments(self._context(SessionEndMessage, end_timestamp=datetime.now(UTC)))

    async def _send(self, text: str) -> None:
        if self._client_gone:
            return
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            self._client_gone = True


async def reject(ws: ServerConnection, uid: str | None, text: str) -> None:
    """Answer once and close (bad config, capacity)."""
    with contextlib.suppress(ConnectionClosed):
        await ws.send(text)
    with contextlib.suppress(Exception):
        await ws.close()


def protocol_error(uid: str | None, exc: ProtocolError) -> str:
    return error(uid, str(exc))
