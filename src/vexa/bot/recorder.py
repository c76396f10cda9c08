"""The bot's recording: each captured track written as playable FLAC chunks while the meeting runs.

Why chunks: a bot can be killed at any moment (SIGKILL, OOM, a node going away).
Every ``RECORDING_CHUNK_S`` seconds of a track become one complete FLAC file in
storage, named ``<seq>_<offset ms>.flac`` where the offset counts from the
recording's first sample, so whatever was written plays and lines up without the
bot's help. ``tracks.json`` (rewritten when a track appears) names each track's
participant. After the meeting the collector's post-processor joins the chunks
into one file per participant plus the mix (``vexa.recordings.finalize``).

The page's speaker events go beside the chunks (``speakers/<seq>.json``, each event
dated by its wall time, written with the chunks): a mixed track (Teams, Zoom web)
says nothing of who spoke, and the live copy of these events in Redis expires
(``SPEAKER_EVENTS_TTL``), while the final transcript may be made days later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import numpy as np

from vexa.recordings.audio import SR, encode_flac
from vexa.recordings.storage import RecordingStorage, StorageError

log = logging.getLogger(__name__)


class _Track:
    def __init__(self, track_id: str, name: str | None, participant_id: str | None, origin_ms: int) -> None:
        self.track_id = track_id
        self.name = name
        self.participant_id = participant_id
        self.origin_ms = origin_ms  # this track's sample 0, ms after the recording's
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.written = 0  # samples already in chunks
        self.seq = 0


class MeetingRecorder:
    """``push`` from the capture path (never blocks); chunks are written by one background task."""

    def __init__(self, storage: RecordingStorage, prefix: str, chunk_s: float = 10.0) -> None:
        self.storage = storage
        self.prefix = prefix.rstrip("/")
        self.chunk_samples = max(1, int(chunk_s * SR))
        self.origin_wall: float | None = None
        self.tracks: dict[str, _Track] = {}
        self._queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.chunks_written = 0
        self.write_errors = 0
        self._speakers: list[dict[str, Any]] = []  # since the last write: bounded by a chunk's time
        self._speaker_seq = 0

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())

    def push(
        self, key: str, name: str | None, participant_id: str | None, pcm: bytes, end_wall: float
    ) -> None:
        samples = np.frombuffer(pcm, dtype="<f4")
        if not len(samples):
            return
        track = self.tracks.get(key)
        if track is None:
            start_wall = end_wall - len(samples) / SR
            if self.origin_wall is None:
                self.origin_wall = start_wall
            origin_ms = max(0, round((start_wall - self.origin_wall) * 1000))
            track = _Track(f"t{len(self.tracks) + 1}", name, participant_id, origin_ms)
            self.tracks[key] = track
            self._queue.put_nowait(("manifest", None))
        track.buffer.append(samples.copy())
        track.buffered += len(samples)
        if track.buffered >= self.chunk_samples:
            self._cut(track)

    def speaker(self, event_type: str, name: str, participant_id: str | None, wall: float) -> None:
        """A speaking-indicator change at ``wall`` (already dated back by the indicator's lag)."""
        self._speakers.append(
            {
                "event_type": event_type,
                "participant_name": name,
                "participant_id": participant_id,
                "wall": wall,
            }
        )

    def _flush_speakers(self) -> None:
        if not self._speakers:
            return
        self._speaker_seq += 1
        key = f"{self.prefix}/speakers/{self._speaker_seq:06d}.json"
        self._queue.put_nowait(("speakers", (key, json.dumps(self._speakers).encode())))
        self._speakers = []

    def _cut(self, track: _Track) -> None:
        self._flush_speakers()
        if not track.buffered:
            return
        audio = np.concatenate(track.buffer)
        track.buffer, track.buffered = [], 0
        offset_ms = track.origin_ms + track.written * 1000 // SR
        track.written += len(audio)
        track.seq += 1
        key = f"{self.prefix}/chunks/{track.track_id}/{track.seq:06d}_{offset_ms}.flac"
        self._queue.put_nowait(("chunk", (key, audio)))

    def _manifest(self) -> bytes:
        return json.dumps(
            {
                "started_at": self.origin_wall,
                "sample_rate": SR,
                "tracks": {
                    t.track_id: {"name": t.name, "participant_id": t.participant_id, "mixed": t.name is None}
                    for t in self.tracks.values()
                },
            }
        ).encode()

    async def _write_loop(self) -> None:
        while (item := await self._queue.get()) is not None:
            kind, body = item
            try:
                if kind == "manifest":
                    await self.storage.put(f"{self.prefix}/tracks.json", self._manifest())
                elif kind == "speakers":
                    await self._put_with_retry(*body)
                else:
                    key, audio = body
                    data = await asyncio.to_thread(encode_flac, audio)
                    await self._put_with_retry(key, data)
                    self.chunks_written += 1
            except (StorageError, OSError) as exc:
                self.write_errors += 1
                log.error("recording: could not write %s: %s", kind, exc)

    async def _put_with_retry(self, key: str, data: bytes, attempts: int = 3) -> None:
        for attempt in range(attempts):
            try:
                await self.storage.put(key, data)
                return
            except (StorageError, OSError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.5 * 2**attempt)

    async def close(self, within_s: float = 30.0) -> None:
        """Write what is buffered and wait for the writer (bounded)."""
        for track in self.tracks.values():
            self._cut(track)
        self._flush_speakers()
        self._queue.put_nowait(None)
        if self._writer is not None:
            started = time.monotonic()
            try:
                await asyncio.wait_for(self._writer, within_s)
            except TimeoutError:
                log.error("recording: writer did not finish in %.0fs", time.monotonic() - started)
        log.info("recording: %d chunks written, %d errors", self.chunks_written, self.write_errors)
