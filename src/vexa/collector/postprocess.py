"""After a meeting: finalize its recording, transcribe it again offline, store the final transcript.

Why here, in the collector: the collector owns the meeting's transcript (it serves
``GET /transcripts``), so the final one belongs beside the live one; and it already
runs one background worker per concern. A mixed track (Teams, Zoom web) is
decoded with word timings and its words attributed to speakers from the speaker
events the bot recorded beside it (``vexa.collector.final_speakers``). The decoding itself never runs in this
process: it goes to a ``ProcessPoolExecutor`` of ``POSTPROCESS_CONCURRENCY`` children
(1 by default) that lower their own CPU priority (``POSTPROCESS_NICE``), so the
event loop stays free and live transcription (its own process, normal priority)
is never starved. The queue is a Redis stream (``vexa.recordings.jobs``): a job
survives a restart (a pending entry is read again), and at most
``POSTPROCESS_CONCURRENCY`` meetings are worked on at once.

Progress is visible in ``meetings.data["final_transcript"]``:
``{status: queued|processing|completed|failed, progress: 0..1, model, segments, error}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.collector.final_speakers import attribute_final
from vexa.collector.notify import send_user_webhook
from vexa.collector.settings import PostprocessSettings
from vexa.db.models import FinalSegment, Meeting
from vexa.recordings import records
from vexa.recordings.finalize import Track, finalize
from vexa.recordings.jobs import POSTPROCESS_GROUP, POSTPROCESS_STREAM
from vexa.recordings.offline import OfflineOptions, lower_priority, transcribe_track
from vexa.recordings.storage import RecordingStorage, StorageError
from vexa.webhooks.emit import WebhookEmitter

log = logging.getLogger(__name__)

FINAL_KEY = "final_transcript"
CLAIM_CHECK_S = 60.0  # how often jobs of dead collectors are looked for


class PostProcessor:
    def __init__(
        self,
        settings: PostprocessSettings,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        storage: RecordingStorage,
        *,
        consumer: str,
        speaker_min_confidence: float = 0.35,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.storage = storage
        self.consumer = consumer
        self.speaker_min_confidence = speaker_min_confidence
        self.webhooks = WebhookEmitter(redis, sessionmaker)
        self._slots = asyncio.Semaphore(settings.postprocess_concurrency)
        self._pool: ProcessPoolExecutor | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.settings.postprocess_concurrency,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=lower_priority,
                initargs=(self.settings.postprocess_nice,),
            )
        return self._pool

    def model(self) -> tuple[str, str]:
        """(name, folder) of the post-meeting model: ``offline_model``, or the live one if that is missing."""
        from vexa.transcription.models import ModelUnavailable, resolve_model

        s = self.settings
        try:
            return s.offline_model, resolve_model(s.offline_model, s.allow_model_download)
        except ModelUnavailable:
            fallback = s.offline_model_fallback
            if fallback is None:
                raise
            log.warning("post-meeting model %s is not installed; using %s", s.offline_model, fallback)
            return fallback, resolve_model(fallback, s.allow_model_download)

    def options(
        self, model: str, language: str | None, hotwords: str | None, *, words: bool = False
    ) -> OfflineOptions:
        s = self.settings
        return OfflineOptions(
            model=model,
            device=s.postprocess_device,
            compute_type=s.postprocess_compute_type,
            cpu_threads=s.postprocess_cpu_threads,
            beam_size=s.postprocess_beam_size,
            language=language,
            hotwords=hotwords,
            word_timestamps=words,
        )

    # ---- the queue ---------------------------------------------------------------------------
    async def ensure_group(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await self.redis.xgroup_create(POSTPROCESS_STREAM, POSTPROCESS_GROUP, id="0", mkstream=True)

    async def run(self) -> None:
        await self.ensure_group()
        backlog = await self._read("0", count=1000)  # our own unacknowledged entries (a restart mid-job)
        last_claim = time.monotonic()
        while True:
            await self._slots.acquire()
            try:
                if not backlog and time.monotonic() - last_claim > CLAIM_CHECK_S:
                    last_claim = time.monotonic()
                    backlog = await self._claim_stale()
                entries = backlog[:1] if backlog else await self._read(">", count=1, block_ms=2000)
                backlog = backlog[1:]
            except asyncio.CancelledError:
                self._slots.release()
                raise
            except Exception:
                self._slots.release()
                log.warning("post-processing queue unreadable; retrying", exc_info=True)
                await asyncio.sleep(2)
                continue
            if not entries:
                self._slots.release()
                continue
            entry_id, fields = entries[0]
            task = asyncio.create_task(self._job(entry_id, fields))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _read(self, cursor: str, *, count: int, block_ms: int | None = None) -> list[Any]:
        reply = await self.redis.xreadgroup(
            POSTPROCESS_GROUP, self.consumer, {POSTPROCESS_STREAM: cursor}, count=count, block=block_ms
        )
        return list(reply[0][1]) if reply else []

    async def _claim_stale(self) -> list[Any]:
        """Jobs a dead collector took and never finished (idle longer than ``POSTPROCESS_CLAIM_IDLE_S``)."""
        reply = await self.redis.xautoclaim(
            POSTPROCESS_STREAM,
            POSTPROCESS_GROUP,
            self.consumer,
            min_idle_time=int(self.settings.postprocess_claim_idle_s * 1000),
            start_id="0-0",
            count=10,
        )
        claimed = [entry for entry in reply[1] if entry and entry[1]]
        if claimed:
            log.info("post-processing: took over %d stale jobs", len(claimed))
        return claimed

    async def _job(self, entry_id: Any, fields: dict[Any, Any]) -> None:
        """One job; acknowledged when done or failed, left pending when cancelled (resumed later)."""
        try:
            try:
                decoded = {_s(k): _s(v) for k, v in fields.items()}
                await self.process(int(decoded.get("meeting_id", "0")), force=bool(decoded.get("force")))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("post-processing entry %s failed", _s(entry_id))
            with contextlib.suppress(Exception):
                await self.redis.xack(POSTPROCESS_STREAM, POSTPROCESS_GROUP, entry_id)
                await self.redis.xdel(POSTPROCESS_STREAM, entry_id)
        finally:
            self._slots.release()

    async def close(self) -> None:
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- one meeting -------------------------------------------------------------------------
    async def process(self, meeting_id: int, *, force: bool = False) -> None:
        """Finalize the meeting's recordings, then (once, or again with ``force``) transcribe them."""
        found = await self.finalize_recordings(meeting_id, force=force)
        if found is None:
            return
        user_id, data, tracks = found
        done = (data.get(FINAL_KEY) or {}).get("status") == "completed"
        if tracks and (force or not done):
            await self._transcribe(meeting_id, user_id, data, tracks)

    async def finalize_recordings(
        self, meeting_id: int, *, force: bool = False
    ) -> tuple[int, dict[str, Any], list[Track]] | None:
        """Chunks -> media files for recordings still in progress; returns (user, data, tracks)."""
        async with self.sessionmaker() as session:
            meeting = await session.get(Meeting, meeting_id)
            if meeting is None:
                return None
            user_id, data = meeting.user_id, dict(meeting.data or {})
        tracks: list[Track] = []
        for rec in data.get(records.RECORDINGS_KEY) or []:
            if rec.get("status") == records.IN_PROGRESS or (force and not rec.get("media_files")):
                tracks += await self._finalize(meeting_id, user_id, rec)
            elif rec.get("status") == records.COMPLETED:
                tracks += await self._load(rec)
        return user_id, data, tracks

    async def _load(self, rec: dict[str, Any]) -> list[Track]:
        from vexa.recordings.finalize import load_tracks

        _, tracks = await load_tracks(self.storage, rec["storage_prefix"])
        return tracks

    async def _finalize(self, meeting_id: int, user_id: int, rec: dict[str, Any]) -> list[Track]:
        try:
            result = await finalize(self.storage, rec["storage_prefix"])
        except StorageError as exc:
            log.error("meeting %s: recording %s could not be finalized: %s", meeting_id, rec["id"], exc)
            await self._update_recording(meeting_id, rec["id"], status=records.FAILED, error_message=str(exc))
            return []
        if not result.media_files:
            log.info("meeting %s: recording %s captured no audio; dropped", meeting_id, rec["id"])
            await self._update_recording(meeting_id, rec["id"], drop=True)
            return []
        updated = await self._update_recording(
            meeting_id,
            rec["id"],
            status=records.COMPLETED,
            media_files=result.media_files,
            completed_at=datetime.now(UTC).isoformat(),
        )
        log.info("meeting %s: recording %s ready (%d files)", meeting_id, rec["id"], len(result.media_files))
        if updated is not None:
            await send_user_webhook(
                self.webhooks,
                user_id,
                "recording.ready",
                {"meeting_id": meeting_id, "recording": updated},
                key=f"recording:{rec['id']}:{updated.get('completed_at')}",
            )
        return result.tracks

    async def _update_recording(
        self, meeting_id: int, recording_id: int, *, drop: bool = False, **changes: Any
    ) -> dict[str, Any] | None:
        def mutate(data: dict[str, Any]) -> dict[str, Any] | None:
            found = None
            kept = []
            for rec in data.get(records.RECORDINGS_KEY) or []:
                if rec.get("id") == recording_id:
                    if drop:
                        continue
                    rec = found = {**rec, **changes}
                kept.append(rec)
            data[records.RECORDINGS_KEY] = kept
            return found

        return await self._mutate(meeting_id, mutate)

    async def _mutate(self, meeting_id: int, mutate: Callable[[dict[str, Any]], Any]) -> Any:
        """Change ``meetings.data`` under the row lock the bot-manager's transitions take too."""
        async with self.sessionmaker() as session, session.begin():
            meeting = await session.get(Meeting, meeting_id, with_for_update=True, populate_existing=True)
            if meeting is None:
                return None
            data = dict(meeting.data or {})
            result = mutate(data)
            meeting.data = data
            return result

    async def _progress(self, meeting_id: int, **state: Any) -> None:
        state["updated_at"] = datetime.now(UTC).isoformat()

        def mutate(data: dict[str, Any]) -> None:
            data[FINAL_KEY] = {**(data.get(FINAL_KEY) or {}), **state}

        await self._mutate(meeting_id, mutate)

    async def _transcribe(
        self, meeting_id: int, user_id: int, data: dict[str, Any], tracks: list[Track]
    ) -> None:
        people = [t for t in tracks if t.name is not None]
        work = people or tracks  # per participant when we have them; else the unattributed capture
        vocabulary = data.get("custom_vocabulary") or []
        # A mixed track's speakers come from its recorded speaker events, word by word.
        by_word = any(t.name is None and t.speaker_log for t in work)
        name, folder = await asyncio.to_thread(self.model)  # the first use of base assembles it on disk
        options = self.options(folder, data.get("language"), ", ".join(vocabulary) or None, words=by_word)
        await self._progress(meeting_id, status="processing", progress=0.0, model=name)
        loop = asyncio.get_running_loop()
        segments: list[dict[str, Any]] = []
        cpu_s = 0.0
        try:
            for done, track in enumerate(work, start=1):
                found, spent = await loop.run_in_executor(
                    self.pool, partial(transcribe_track, track.audio, options)
                )
                cpu_s += spent
                if track.name is None and track.speaker_log:
                    segments += attribute_final(found, track.speaker_log, self.speaker_min_confidence)
                else:
                    segments += [{**seg, "speaker": track.name} for seg in found]
                await self._progress(meeting_id, progress=round(done / len(work), 3))
        except Exception as exc:
            log.exception("meeting %s: post-meeting transcription failed", meeting_id)
            await self._progress(meeting_id, status="failed", error=type(exc).__name__)
            return
        segments.sort(key=lambda s: (s["start"], s["end"]))
        async with self.sessionmaker() as session, session.begin():
            await session.execute(delete(FinalSegment).where(FinalSegment.meeting_id == meeting_id))
            session.add_all(
                FinalSegment(
                    meeting_id=meeting_id,
                    start_time=s["start"],
                    end_time=s["end"],
                    text=s["text"].replace("\x00", ""),
                    speaker=s["speaker"],
                    language=(s.get("language") or None),
                )
                for s in segments
            )
        audio_s = sum(len(t.audio) for t in work) / 16000
        completed_at = datetime.now(UTC).isoformat()
        await self._progress(
            meeting_id,
            status="completed",
            completed_at=completed_at,
            progress=1.0,
            segments=len(segments),
            error=None,
            cpu_seconds=round(cpu_s, 2),
            audio_seconds=round(audio_s, 2),
        )
        log.info("meeting %s: final transcript ready (%d segments)", meeting_id, len(segments))
        async with self.sessionmaker() as session:
            meeting = (await session.execute(select(Meeting).where(Meeting.id == meeting_id))).scalar_one()
            native, platform = meeting.platform_specific_id, meeting.platform
        await send_user_webhook(
            self.webhooks,
            user_id,
            "transcript.ready",
            {
                "meeting_id": meeting_id,
                "platform": platform,
                "native_meeting_id": native,
                "segments": len(segments),
            },
            key=f"meeting:{meeting_id}:final:{completed_at}",  # a re-run is a new event
        )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
