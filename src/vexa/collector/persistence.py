"""Background persistence: settled segments move from Redis to PostgreSQL, exactly once.

Every ``BACKGROUND_TASK_INTERVAL`` seconds, for each meeting in ``active_meetings``:

1. take the meeting's lock (``SET NX PX``), so two collectors do not work on the same
   meeting at once (the upsert below would make that harmless, but wasteful);
2. read the hash; segments unchanged for ``IMMUTABILITY_THRESHOLD`` seconds are ready;
3. map speakers again (events may have arrived after the draft) and filter hallucinations;
4. upsert the kept ones in one transaction: ``ON CONFLICT (meeting_id, session_uid,
   start_time) DO UPDATE`` -- so a crash after COMMIT but before step 5 only means the
   same rows are written again next time, never duplicated;
5. after COMMIT, remove kept and filtered segments with compare-and-delete, so a draft
   that changed since step 2 stays for the next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.collector import speakers
from vexa.collector.consumer import is_transient
from vexa.collector.filters import TranscriptionFilter
from vexa.collector.meetings import session_starts
from vexa.collector.segments import (
    ACTIVE_MEETINGS,
    MeetingLock,
    StoredSegment,
    compare_and_delete,
    decode,
    drop_meeting,
    now_utc,
    read_raw,
)
from vexa.db.models import Meeting, Transcription
from vexa.events import publish_event

log = logging.getLogger(__name__)

ROWS_PER_STATEMENT = 2000  # 8 parameters a row stays under asyncpg's 32767-parameter limit


class Persister:
    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        transcript_filter: TranscriptionFilter,
        *,
        immutability_threshold_s: float,
        interval_s: float,
        after_commit: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self._sm = sessionmaker
        self.filter = transcript_filter
        self.threshold = timedelta(seconds=immutability_threshold_s)
        self.interval_s = interval_s
        self.lock_ttl_ms = int(max(30.0, 3 * interval_s) * 1000)
        # Fault injection for tests of the commit-then-HDEL window; None in production.
        self.after_commit = after_commit
        self.persisted = 0
        self.filtered = 0

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = logging.WARNING if is_transient(exc) else logging.ERROR
                log.log(level, "persistence round failed (segments stay in Redis): %s", exc, exc_info=True)
            await asyncio.sleep(self.interval_s)

    async def run_once(self, *, force: bool = False) -> int:
        """One round over all active meetings; ``force`` ignores the immutability threshold."""
        total = 0
        for member in await self.redis.smembers(ACTIVE_MEETINGS):
            try:
                meeting_id = int(member)
            except ValueError:
                await self.redis.srem(ACTIVE_MEETINGS, member)
                continue
            total += await self.persist_meeting(meeting_id, force=force)
        return total

    async def persist_meeting(self, meeting_id: int, *, force: bool = False) -> int:
        lock = MeetingLock(self.redis, meeting_id, self.lock_ttl_ms)
        if not await lock.acquire():
            log.debug("meeting %s is being persisted by another collector", meeting_id)
            return 0
        try:
            return await self._persist_locked(meeting_id, force)
        finally:
            await lock.release()

    async def _persist_locked(self, meeting_id: int, force: bool) -> int:
        raw = await read_raw(self.redis, meeting_id)
        if not raw:  # expired or emptied: leave active_meetings
            await compare_and_delete(self.redis, meeting_id, {})
            return 0
        good, bad = decode(raw)
        if bad:
            log.warning("meeting %s: dropping %d unreadable segment value(s)", meeting_id, len(bad))
            await compare_and_delete(self.redis, meeting_id, {f: raw[f] for f in bad})
        cutoff = now_utc() - self.threshold
        ready = {f: s for f, s in good.items() if force or s.updated_at <= cutoff}
        if not ready:
            return 0

        async with self._sm() as session:
            meeting = (
                await session.execute(
                    select(Meeting.id, Meeting.platform, Meeting.platform_specific_id, Meeting.data).where(
                        Meeting.id == meeting_id
                    )
                )
            ).first()
        if meeting is None or (meeting.data or {}).get("redacted"):
            log.info(
                "meeting %s was deleted or redacted; discarding its %d live segment(s)", meeting_id, len(raw)
            )
            await drop_meeting(self.redis, meeting_id)
            return 0

        await self._remap_speakers(list(ready.values()))
        kept: list[StoredSegment] = []
        for seg in ready.values():
            ok, why = self.filter.keep(seg.text)
            if ok:
                kept.append(seg)
            else:
                log.debug("meeting %s: filtered %r (%s)", meeting_id, seg.text[:80], why)
        kept.sort(key=lambda s: (s.session_uid, s.start))

        if kept:
            async with self._sm() as session, session.begin():
                for i in range(0, len(kept), ROWS_PER_STATEMENT):
                    await session.execute(_upsert(meeting_id, kept[i : i + ROWS_PER_STATEMENT]))
        if self.after_commit is not None:
            await self.after_commit(meeting_id)
        await compare_and_delete(self.redis, meeting_id, {f: raw[f] for f in ready})
        self.persisted += len(kept)
        self.filtered += len(ready) - len(kept)
        log.info(
            "meeting %s: persisted %d segment(s), filtered %d", meeting_id, len(kept), len(ready) - len(kept)
        )
        if kept:
            await self._announce(meeting_id, meeting.platform, meeting.platform_specific_id, kept)
        return len(kept)

    async def _remap_speakers(self, segments: list[StoredSegment]) -> None:
        """Speaker events can arrive after a draft was written: map once more with all of them."""
        pending = [s for s in segments if not s.speaker_explicit]
        cache: dict[str, list[speakers.TimedEvent]] = {}
        for seg in pending:
            if seg.session_uid not in cache:
                cache[seg.session_uid] = await speakers.load_events(self.redis, seg.session_uid)
            seg.speaker, seg.speaker_mapping_status = speakers.map_speaker(
                cache[seg.session_uid], seg.start, seg.end_time
            )

    async def _announce(
        self, meeting_id: int, platform: str, native_id: str | None, kept: list[StoredSegment]
    ) -> None:
        try:
            async with self._sm() as session:
                starts = await session_starts(session, meeting_id)
            payload = {
                "segments": [
                    s.model_copy(update={"completed": True})
                    .to_public(starts.get(s.session_uid))
                    .model_dump(mode="json")
                    for s in kept
                ]
            }
            await publish_event(self.redis, "transcript.finalized", meeting_id, platform, native_id, payload)
        except Exception:  # the rows are safe; a missed live event is not worth failing the round
            log.warning("meeting %s: could not publish transcript.finalized", meeting_id, exc_info=True)


def _upsert(meeting_id: int, segments: list[StoredSegment]):  # type: ignore[no-untyped-def]
    stmt = insert(Transcription).values(
        [
            {
                "meeting_id": meeting_id,
                "session_uid": s.session_uid,
                "start_time": s.start,
                "end_time": s.end_time,
                "text": s.text,
                "speaker": s.speaker,
                "speaker_mapping_status": s.speaker_mapping_status,
                "language": s.language,
            }
            for s in segments
        ]
    )
    return stmt.on_conflict_do_update(
        constraint="uq_transcriptions_segment",
        set_={
            "end_time": stmt.excluded.end_time,
            "text": stmt.excluded.text,
            "speaker": stmt.excluded.speaker,
            "speaker_mapping_status": stmt.excluded.speaker_mapping_status,
            "language": stmt.excluded.language,
        },
    )
