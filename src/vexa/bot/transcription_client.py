"""One audio stream to the transcription service, surviving service restarts.

Protocol (docs/CONTRACTS.md "Transcription WebSocket", WhisperLive-compatible):
a JSON config message, then binary float32 mono 16 kHz frames, then
``END_OF_AUDIO``. Text messages (``speaker_activity``, ``session_control``) may
be interleaved.

Why a buffer and confirmations: the protocol has no acknowledgements, so a frame
is only known to have arrived when (a) a WebSocket ping sent after it got its
pong, or (b) the server closed the connection cleanly (a close handshake means
it read everything we wrote before our close reply). Frames not confirmed when a
connection drops are re-sent first on the next connection, which is a new
session ``uid`` whose audio offset 0 is the first re-sent sample, so nothing is
lost and — barring a server crash between reading and confirming — nothing is
counted twice. The buffer is bounded (``max_buffer_s``); beyond it the oldest
audio is dropped and logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from vexa.tasks import cancel_and_wait

log = logging.getLogger("vexa.bot.transcription")

SAMPLE_RATE = 16000
END_OF_AUDIO = b"END_OF_AUDIO"


@dataclass
class _Frame:
    start: int  # index of the frame's first sample in this stream
    data: bytes

    @property
    def samples(self) -> int:
        return len(self.data) // 4


@dataclass
class SessionRecord:
    """One WebSocket session as sent (for logs, tests and benches)."""

    uid: str
    first_sample: int
    opened_at: float
    samples_sent: int = 0
    closed_cleanly: bool | None = None


@dataclass
class StreamStats:
    samples_pushed: int = 0
    samples_confirmed: int = 0
    samples_dropped: int = 0
    reconnects: int = 0
    sessions: list[SessionRecord] = field(default_factory=list)


class TranscriptionStream:
    """Sends one capture stream (a participant, or the mix) to the transcription service.

    ``push`` is synchronous and never blocks the capture path; ``run`` (a task) does
    the network work; ``close`` flushes everything, sends ``END_OF_AUDIO`` and stops.
    """

    def __init__(
        self,
        url: str,
        session_config: dict[str, Any],
        *,
        speaker: str | None = None,
        max_buffer_s: float = 120.0,
        reconnect_max_s: float = 10.0,
        confirm_interval_s: float = 0.5,
        label: str = "mixed",
    ) -> None:
        self.url = url
        self.base_config = {k: v for k, v in session_config.items() if v is not None}
        if speaker:
            self.base_config["speaker"] = speaker
        self.label = label
        self.max_buffer_samples = int(max_buffer_s * SAMPLE_RATE)
        self.reconnect_max_s = reconnect_max_s
        self.confirm_interval_s = confirm_interval_s
        self.stats = StreamStats()
        self.origin_wall: float | None = None  # wall-clock time of stream sample 0
        self._pending: collections.deque[_Frame] = collections.deque()  # unconfirmed, in order
        self._pending_samples = 0
        self._texts: collections.deque[tuple[float | None, dict[str, Any]]] = collections.deque(maxlen=1000)
        # Speaker events already sent, by wall time: a new session re-sends those its audio covers again.
        self._sent_speakers: collections.deque[tuple[float, dict[str, Any]]] = collections.deque(maxlen=5000)
        self._wake = asyncio.Event()
        self._closing = False
        self._close_requested = asyncio.Event()
        self._done = asyncio.Event()
        self._session: SessionRecord | None = None
        self._ws: ClientConnection | None = None

    # ---- capture side -------------------------------------------------------------
    def push(self, samples: np.ndarray | bytes, capture_end_wall: float | None = None) -> None:
        """Queue captured audio (float32 mono 16 kHz); ``capture_end_wall`` dates its last sample."""
        data = samples if isinstance(samples, bytes) else np.asarray(samples, dtype="<f4").tobytes()
        n = len(data) // 4
        if n == 0 or self._closing:
            return
        if self.origin_wall is None:
            end = capture_end_wall if capture_end_wall is not None else time.time()
            self.origin_wall = end - n / SAMPLE_RATE
        self._pending.append(_Frame(self.stats.samples_pushed, data))
        self.stats.samples_pushed += n
        self._pending_samples += n
        while self._pending_samples > self.max_buffer_samples and len(self._pending) > 1:
            dropped = self._pending.popleft()
            self._pending_samples -= dropped.samples
            self.stats.samples_dropped += dropped.samples
            self.stats.samples_confirmed += dropped.samples
            log.warning(
                "%s: transcription unreachable; dropped %d oldest samples", self.label, dropped.samples
            )
        self._wake.set()

    def send_event(self, message: dict[str, Any], wall_time: float | None = None) -> None:
        """Queue a text message; with ``wall_time`` it gets ``relative_timestamp_ms`` for its session."""
        self._texts.append((wall_time, message))
        self._wake.set()

    @property
    def current_uid(self) -> str | None:
        return self._session.uid if self._session else None

    # ---- network side -------------------------------------------------------------
    async def run(self) -> None:
        backoff = 0.25
        try:
            while True:
                if self._closing and self.stats.samples_pushed == 0 and not self._texts:
                    return  # nothing was ever captured: no session to open or end
                try:
                    # No permessage-deflate: float32 audio barely compresses, and deflating it was a
                    # third of the bot's Python CPU (py-spy, bench/bots.py).
                    async with connect(
                        self.url,
                        open_timeout=5,
                        ping_interval=None,
                        close_timeout=3,
                        max_size=2**22,
                        compression=None,
                    ) as ws:
                        backoff = 0.25
                        finished = await self._session_loop(ws)
                        if finished:
                            return
                except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
                    self._after_disconnect(exc)
                if self._closing and self._give_up_at is not None and time.monotonic() > self._give_up_at:
                    log.error(
                        "%s: transcription unreachable while closing; %d samples not delivered",
                        self.label,
                        self._pending_samples,
                    )
                    return
                self.stats.reconnects += 1
                log.info("%s: reconnecting to transcription in %.2fs", self.label, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed_wait(), backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)
        finally:
            self._done.set()

    _give_up_at: float | None = None

    async def _closed_wait(self) -> None:
        # Sleep for the backoff, but do not wait out a long backoff once closing.
        await self._close_requested.wait()
        await asyncio.sleep(0.2)

    def _after_disconnect(self, exc: BaseException) -> None:
        session = self._session
        self._ws = None
        if session is not None:
            clean = isinstance(exc, ConnectionClosed) and exc.rcvd is not None
            session.closed_cleanly = clean
            if clean:
                # The server closed with a handshake: it read all we wrote before that.
                self._confirm(session.first_sample + session.samples_sent)
            log.warning(
                "%s: transcription session %s dropped (%s); %d samples to re-send",
                self.label,
                session.uid,
                "closed by server" if clean else type(exc).__name__,
                self._pending_samples,
            )
        else:
            log.warning("%s: cannot reach transcription: %s", self.label, exc)
        self._session = None

    def _confirm(self, upto_sample: int) -> None:
        while self._pending and self._pending[0].start + self._pending[0].samples <= upto_sample:
            frame = self._pending.popleft()
            self._pending_samples -= frame.samples
            self.stats.samples_confirmed += frame.samples

    async def _session_loop(self, ws: ClientConnection) -> bool:
        """Stream until closing (True) or the connection drops (raises)."""
        first = self._pending[0].start if self._pending else self.stats.samples_confirmed
        session = SessionRecord(uid=str(uuid.uuid4()), first_sample=first, opened_at=time.time())
        self._session, self._ws = session, ws
        self.stats.sessions.append(session)
        await ws.send(json.dumps({**self.base_config, "uid": session.uid}))
        self._replay_speakers(first)
        log.info("%s: transcription session %s open (from sample %d)", self.label, session.uid, first)
        reader = asyncio.create_task(self._read(ws))
        pings: collections.deque[tuple[int, asyncio.Future[float]]] = collections.deque()
        last_ping = time.monotonic()
        try:
            while True:
                # Confirm frames whose later ping got its pong.
                while pings and pings[0][1].done():
                    upto, _ = pings.popleft()
                    self._confirm(upto)
                if reader.done():
                    reader.result()  # re-raises a reader error
                    raise ConnectionClosed(ws.close_rcvd, ws.close_sent)
                await self._send_texts(ws, session)
                sent_upto = session.first_sample + session.samples_sent
                for frame in list(self._pending):
                    if frame.start < sent_upto:
                        continue
                    await ws.send(frame.data)
                    session.samples_sent += frame.samples
                    sent_upto += frame.samples
                if (
                    time.monotonic() - last_ping >= self.confirm_interval_s
                    and sent_upto > session.first_sample
                ):
                    pings.append((sent_upto, await ws.ping()))
                    last_ping = time.monotonic()
                if self._closing and not self._texts:
                    await ws.send(END_OF_AUDIO)
                    waiter = await ws.ping()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter, 5)
                        self._confirm(sent_upto)
                    await ws.close()
                    session.closed_cleanly = True
                    log.info(
                        "%s: transcription session %s ended (%d samples)",
                        self.label,
                        session.uid,
                        session.samples_sent,
                    )
                    self._session = None
                    return True
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.confirm_interval_s)
        finally:
            await cancel_and_wait(reader)

    async def _send_texts(self, ws: ClientConnection, session: SessionRecord) -> None:
        while self._texts:
            wall, message = self._texts[0]
            if wall is not None:
                origin = (self.origin_wall or wall) + session.first_sample / SAMPLE_RATE
                await ws.send(
                    json.dumps({**message, "relative_timestamp_ms": max(0, round((wall - origin) * 1000))})
                )
                if message.get("type") == "speaker_activity":
                    self._sent_speakers.append((wall, message))
            else:
                await ws.send(json.dumps(message))
            self._texts.popleft()

    def _replay_speakers(self, first_sample: int) -> None:
        """Queue, ahead of the unsent ones, the speaker events a new session needs again.

        A new session starts at the first unconfirmed sample, so audio the previous session
        may already have had comes again: the events inside it are re-sent (in their order),
        and whoever was speaking when it starts gets a START at its offset 0, so the
        collector's word attribution sees the same speakers in every session.
        """
        if self.origin_wall is None or not self._sent_speakers:
            return
        origin = self.origin_wall + first_sample / SAMPLE_RATE
        speaking: dict[str, dict[str, Any]] = {}
        again: list[tuple[float | None, dict[str, Any]]] = []
        for wall, message in self._sent_speakers:
            if wall >= origin:
                again.append((wall, message))
                continue
            who = str(message.get("participant_id") or message.get("participant_name"))
            if message.get("event_type") == "SPEAKER_START":
                speaking[who] = message
            else:
                speaking.pop(who, None)
        replay = [(origin, message) for message in speaking.values()] + again
        kept = [(w, m) for w, m in self._sent_speakers if w < origin]
        self._sent_speakers.clear()
        self._sent_speakers.extend(kept)
        self._texts.extendleft(reversed(replay))
        if replay:
            log.info("%s: re-sending %d speaker event(s) to the new session", self.label, len(replay))

    async def _read(self, ws: ClientConnection) -> None:
        """Drain server messages (SERVER_READY, segments); we only log notable ones."""
        async for message in ws:
            if isinstance(message, str) and '"status"' in message:
                with contextlib.suppress(ValueError):
                    data = json.loads(message)
                    if data.get("status") in ("ERROR", "WAIT"):
                        log.warning("%s: transcription says %s", self.label, data)

    async def close(self, within_s: float = 15.0) -> None:
        """Flush, send END_OF_AUDIO and end the session (gives up after ``within_s``)."""
        self._closing = True
        self._close_requested.set()
        self._give_up_at = time.monotonic() + within_s
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), within_s + 5)
