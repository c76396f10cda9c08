"""One WebSocket connection: read audio and events, detect speech, decode, answer and publish.

Reading and deciding are two tasks so a slow decode never stops the socket from
draining (the bot confirms audio with pings). The deciding task wakes on new
audio, scores it with VAD (in a thread), asks the policy what to commit and what
to decode, and also wakes on a clock: a client that simply stops sending (a
muted participant, a throttled tab) gets its pending words committed after
``IDLE_COMMIT_MS``, not when the connection ends. Whatever ends the session —
``END_OF_AUDIO``, a dropped connection, ``max_connection_time`` — the audio
already received is decoded to the end and published, because the bot only
re-sends audio the server did not confirm.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from vexa.streams import Segment, SessionEndMessage, SessionStartMessage, SpeakerEvent, TranscriptionMessage
from vexa.transcription import metrics
from vexa.transcription.engine import DecodeOptions, DecodeOutcome
from vexa.transcription.protocol import END_OF_AUDIO, SessionConfig, SessionControl, describe, error, ready
from vexa.transcription.settings import TranscriptionSettings
from vexa.transcription.streaming import StreamingTranscriber
from vexa.transcription.vad import VadParams
from vexa.transcription.words import SAMPLE_RATE, DecodeJob, OutSegment

log = logging.getLogger(__name__)

MAX_ABS_SAMPLE = 64.0  # float audio lives in [-1, 1]; far beyond means int16 bytes sent as float
STALL_MARGIN_S = 0.15  # a frame this late past its normal gap: start the final decode
IDLE_MARGIN_S = 0.3  # this late: commit what is pending
MAX_FRAME_GAP_S = 1.0  # a client sending longer frames still gets its idle commit within ~1.3 s


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What a session may use of its server: decoding, speech scoring, publishing."""

    settings: TranscriptionSettings
    decode: Callable[[DecodeJob, DecodeOptions], Awaitable[DecodeOutcome]]
    score_speech: Callable[[np.ndarray], Awaitable[np.ndarray]]
    multilingual: bool
    publish_segments: Callable[[Any], None] | None  # None: no Redis, nothing is published
    publish_speaker: Callable[[SpeakerEvent], None] | None


class Session:
    def __init__(self, services: SessionServices, ws: ServerConnection, config: SessionConfig) -> None:
        s = services.settings
        self.services = services
        self.ws = ws
        self.config = config
        self.uid = config.uid
        vad = config.vad_parameters
        end_silence_ms = (vad.min_silence_duration_ms if vad else None) or s.end_silence_ms
        self.options = DecodeOptions(
            no_speech_thresh=s.no_speech_thresh
            if config.no_speech_thresh is None
            else config.no_speech_thresh,
            hotwords=config.hotwords,
            beam_size=s.beam_size,
            final_beam_size=s.final_beam_size,
        )
        self.transcriber = StreamingTranscriber(
            language=config.language if services.multilingual else "en",
            task=config.task,
            initial_prompt=config.initial_prompt,
            min_chunk_s=s.min_chunk_s,
            early_decode_s=s.early_decode_ms / 1000,
            end_silence_s=end_silence_ms / 1000,
            max_utterance_s=s.max_buffer_s,
            vad=VadParams(threshold=vad.threshold if vad else s.vad_threshold),
            detect_language=services.multilingual,
        )
        self.use_vad = config.use_vad
        self.stall_s = min(s.early_decode_ms, s.idle_commit_ms) / 1000
        self.idle_s = s.idle_commit_ms / 1000
        self._frame_s = 0.0  # length of the client's latest audio frame: its normal gap between frames
        self.last_n = config.send_last_n_segments or s.send_last_n_segments
        limit = min(config.max_connection_time or s.max_connection_time, s.max_connection_time)
        self.opened = time.monotonic()
        self.deadline = self.opened + limit
        self.publishing = services.publish_segments is not None and config.has_meeting_context
        self.start_wall: float | None = None
        self._wake = asyncio.Event()
        self._last_audio = time.monotonic()
        self._stall_handled = True
        self._idle_handled = True
        self._ended = False
        self._client_gone = False
        self.end_reason = "open"
        self._observed_commits = 0

    # ---- lifecycle --------------------------------------------------------------------
    async def run(self) -> None:
        await self._send(ready(self.uid))
        worker = asyncio.create_task(self._drive(), name=f"transcribe-{self.uid}")
        try:
            self.end_reason = await self._read_loop()
        finally:
            self._ended = True
            self._wake.set()
            try:
                await worker
            except Exception:
                log.exception("session %s: final decode failed", self.uid)
                await self._emit(self.transcriber.finish())
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
        self._last_audio = time.monotonic()
        self._frame_s = min(len(samples) / SAMPLE_RATE, MAX_FRAME_GAP_S)
        self._stall_handled = self._idle_handled = False
        self._wake.set()
        return None

    async def _drive(self) -> None:
        """Score speech, commit and decode until the stream ends; then decode the rest."""
        t = self.transcriber
        decoded = False
        while True:
            if not self._ended and not decoded:
                await self._wait_for_work()
            decoded = False
            self._wake.clear()
            await self._score_speech()
            ended = self._ended
            quiet = time.monotonic() - self._last_audio
            stalled = not ended and quiet >= self._stall_after()
            idle = not ended and quiet >= self._idle_after()
            self._stall_handled |= stalled
            self._idle_handled |= idle
            changes, job = t.poll(stalled=stalled, idle=idle, end=ended)
            await self._emit(changes)
            if job is not None:
                await self._decode(job)
                decoded = True  # the result may allow a commit or call for the next decode: poll at once
                continue
            if ended:
                break
        await self._emit(t.finish())

    async def _wait_for_work(self) -> None:
        """Until audio arrives, or until the client has been quiet long enough to act on it."""
        if self._idle_handled:
            await self._wake.wait()
            return
        quiet_for = self._idle_after() if self._stall_handled else self._stall_after()
        timeout = self._last_audio + quiet_for - time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, timeout))

    def _stall_after(self) -> float:
        """Quiet time that means audio stopped coming, not the client's normal gap between frames.

        Bots send 250 ms frames and WhisperLive's client 256 ms ones: a fixed 250 ms would call
        every such gap a stall (and decode for nothing), so the frame's own length counts first.
        """
        return max(self.stall_s, self._frame_s + STALL_MARGIN_S)

    def _idle_after(self) -> float:
        return max(self.idle_s, self._frame_s + IDLE_MARGIN_S)

    async def _score_speech(self) -> None:
        t = self.transcriber
        work = t.vad_work()
        if work is None:
            return
        block, frames = work
        if self.use_vad:
            probs = await self.services.score_speech(block)
        else:
            probs = np.ones(frames, dtype=np.float32)  # the client asked for no VAD: all of it is speech
        t.add_speech_scores(probs, frames)

    async def _decode(self, job: DecodeJob) -> None:
        try:
            outcome = await self.services.decode(job, self.options)
        except Exception:
            log.exception("session %s: decode failed; skipping this chunk", self.uid)
            self.transcriber.apply(job, None)
            if job.final:
                await self._emit(self.transcriber.finish())  # commit what the drafts heard rather than loop
            return
        if job.revise is not None:
            log.info("session %s: segment %d decoded again in %s", self.uid, job.revise, job.language)
        await self._emit(self.transcriber.apply(job, outcome.result))
        await self._announce_language()

    async def _announce_language(self) -> None:
        """WhisperLive clients learn the detected language once, and again when it changes."""
        t = self.transcriber
        if t.languages.fixed or t.hyp is None or t.hyp.language in (None, t.announced_language):
            return
        current = t.languages.current()
        if current is None or not current.confident:
            return
        t.announced_language = current.language
        log.info(
            "session %s: language %s (pooled share %.2f)", self.uid, current.language, current.probability
        )
        await self._send(
            json.dumps(
                {
                    "uid": self.uid,
                    "language": current.language,
                    "language_prob": round(current.probability, 3),
                }
            )
        )

    async def _emit(self, changes: list[OutSegment]) -> None:
        """Publish changed segments and send the client a fresh snapshot."""
        if not changes:
            return
        self._observe_commits()
        if self.publishing:
            self._ensure_started()
            segments = [Segment(**self._segment_json(s)) for s in changes]
            self._publish(self._context(TranscriptionMessage, segments=segments))
        if not self._client_gone:
            payload = [self._segment_json(s) for s in self.transcriber.snapshot(self.last_n)]
            await self._send(json.dumps({"uid": self.uid, "segments": payload}))

    def _observe_commits(self) -> None:
        """Commit latency of segments completed since the last emit, each counted once.

        Wall time of an utterance's end = when its last sample arrived (``start_wall`` +
        its session time); a client that sends faster than real time gets 0, not negative.
        """
        completed = self.transcriber.completed
        if self.start_wall is not None:
            now = time.time()
            for seg in completed[self._observed_commits :]:
                if seg.text:
                    metrics.SEGMENTS_COMMITTED.inc()
                    metrics.COMMIT_LATENCY.observe(max(0.0, now - (self.start_wall + seg.end)))
        self._observed_commits = len(completed)

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
            if "language" in data and self.services.multilingual:
                self.transcriber.set_language(control.language)
            if control.task:
                self.transcriber.task = control.task
            log.info("session %s reconfigured: language=%s task=%s", self.uid, control.language, control.task)
        elif kind == "audio_chunk_metadata":
            pass  # informational only (WhisperLive extension)
        else:
            log.debug("session %s: ignored text message of type %r", self.uid, kind)

    async def _speaker_activity(self, data: dict[str, Any]) -> None:
        if not self.publishing or self.services.publish_speaker is None:
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
        self.services.publish_speaker(event)

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

    def _publish(self, message: Any) -> None:
        if self.services.publish_segments is not None:
            self.services.publish_segments(message)

    def _publish_start(self) -> None:
        if self.publishing and self.start_wall is not None:
            started = datetime.fromtimestamp(self.start_wall, UTC)
            self._publish(self._context(SessionStartMessage, start_timestamp=started))

    def _ensure_started(self) -> None:
        if self.start_wall is None:
            self.start_wall = time.time()
            self._publish_start()

    def _publish_end(self) -> None:
        if self.publishing:
            self._ensure_started()
            self._publish(self._context(SessionEndMessage, end_timestamp=datetime.now(UTC)))

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
