"""Background persistence: settled segments move from Redis to PostgreSQL, exactly once.

Every ``BACKGROUND_TASK_INTERVAL`` seconds, for each meeting in ``active_meetings``:

1. take the meeting's lock (``SET NX PX``, renewed while the round runs), so two
   collectors do not work on the same meeting at once (harmless, but wasteful);
2. read the hash; segments unchanged for ``IMMUTABILITY_THRESHOLD`` seconds are ready;
3. map speakers again (events may have arrived after the draft) and filter hallucinations;
4. upsert the kept ones in one transaction that first takes the meeting row ``FOR SHARE``
   and re-checks it is not redacted: ``DELETE /meetings`` takes the same row ``FOR
   UPDATE`` before deleting, so the two serialise and a redacted meeting's rows never
   come back, whatever the Redis lock's timing. ``ON CONFLICT (meeting_id, session_uid,
   start_time) DO UPDATE ... WHERE version <= excluded.version``: a crash after COMMIT
   only means the same rows are written again, and an older draft never replaces a newer row;
5. after COMMIT, remove kept and filtered segments with compare-and-delete, so a draft
   that changed since step 2 stays for the next round.

A row PostgreSQL refuses (bad data, not an outage) must not hold back the rest of its
meeting: the batch is retried row by row and each refused row is moved, with the
database's reason, to the dead-letter stream. An outage leaves everything in Redis,
which has no TTL on segments, for the next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.collector import metrics, speakers
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
    segments_key,
)
from vexa.db.models import Meeting, Transcription
from vexa.events import publish_event
from vexa.streams import entry_version

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
        dead_stream: str,
        after_commit: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self._sm = sessionmaker
        self.filter = transcript_filter
        self.threshold = timedelta(seconds=immutability_threshold_s)
        self.interval_s = interval_s
        self.lock_ttl_ms = int(max(30.0, 3 * interval_s) * 1000)
        self.dead_stream = dead_stream
        # Fault injection for tests of the commit-then-HDEL window; None in production.
        self.after_commit = after_commit
        self.persisted = 0
        self.filtered = 0
        self.dead_lettered = 0

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
            await self._dead_letter(meeting_id, {f: (raw[f], "unreadable segment value") for f in bad})
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

        written: list[StoredSegment] = []
        refused: dict[str, tuple[str, str]] = {}
        if kept:
            try:
                written = await self._write(meeting_id, kept)
            except _Redacted:
                await drop_meeting(self.redis, meeting_id)
                return 0
            except sa_exc.DBAPIError as exc:
                if is_transient(exc):
                    raise
                log.warning("meeting %s: batch refused (%s); retrying row by row", meeting_id, _reason(exc))
                written, refused = await self._write_each(meeting_id, kept, raw)
        if self.after_commit is not None:
            await self.after_commit(meeting_id)
        if refused:
            await self._dead_letter(meeting_id, refused)
        await compare_and_delete(self.redis, meeting_id, {f: raw[f] for f in ready if f not in refused})
        self.persisted += len(kept) - len(refused)
        metrics.observe_persisted(s for s in kept if s.field not in refused)
        self.filtered += len(ready) - len(kept)
        log.info(
            "meeting %s: persisted %d segment(s), filtered %d, refused %d",
            meeting_id,
            len(kept) - len(refused),
            len(ready) - len(kept),
            len(refused),
        )
        if written:
            await self._announce(meeting_id, meeting.platform, meeting.platform_specific_id, written)
        return len(kept) - len(refused)

    async def _write(self, meeting_id: int, segments: list[StoredSegment]) -> list[StoredSegment]:
        """One transaction, fenced by the meeting row lock; returns the rows actually changed."""
        changed: set[tuple[str, float]] = set()
        async with self._sm() as session, session.begin():
            data = (
                await session.execute(
                    select(Meeting.data).where(Meeting.id == meeting_id).with_for_update(read=True)
                )
            ).first()
            if data is None or (data[0] or {}).get("redacted"):
                raise _Redacted
            for i in range(0, len(segments), ROWS_PER_STATEMENT):
                rows = await session.execute(_upsert(meeting_id, segments[i : i + ROWS_PER_STATEMENT]))
                changed.update((uid, start) for uid, start in rows)
        return [s for s in segments if (s.session_uid, s.start) in changed]

    async def _write_each(
        self, meeting_id: int, segments: list[StoredSegment], raw: dict[str, str]
    ) -> tuple[list[StoredSegment], dict[str, tuple[str, str]]]:
        """Row by row: (rows changed, field -> (value, reason) for the rows PostgreSQL refused)."""
        written: list[StoredSegment] = []
        refused: dict[str, tuple[str, str]] = {}
        for seg in segments:
            try:
                written += await self._write(meeting_id, [seg])
            except sa_exc.DBAPIError as exc:
                if is_transient(exc):
                    raise
                refused[seg.field] = (raw[seg.field], f"refused by PostgreSQL: {_reason(exc)}")
        return written, refused

    async def _dead_letter(self, meeting_id: int, items: dict[str, tuple[str, str]]) -> None:
        """Move segments that can never be stored to the dead-letter stream, with the reason.

        The value is removed from the hash only if unchanged (a newer draft may still
        be storable), in the same MULTI as the XADD, so it is never in neither place.
        """
        for field, (value, reason) in items.items():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xadd(
                    self.dead_stream,
                    {"payload": value, "reason": reason[:500], "meeting_id": str(meeting_id), "field": field},
                )
                pipe.eval(_DELETE_IF_SAME, 1, segments_key(meeting_id), field, value)
                await pipe.execute()
            self.dead_lettered += 1
            log.warning("meeting %s: dead-lettered segment %s: %s", meeting_id, field, reason)

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


class _Redacted(Exception):
    """The meeting was deleted or redacted while its segments waited."""


_DELETE_IF_SAME = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def _reason(exc: sa_exc.DBAPIError) -> str:
    """The database's own message, first line only (no parameters: they hold the text)."""
    return str(exc.orig).splitlines()[0][:300] if exc.orig is not None else type(exc).__name__


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
                "version": entry_version(s.version),
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
            "version": stmt.excluded.version,
        },
        where=Transcription.version <= stmt.excluded.version,
    ).returning(Transcription.session_uid, Transcription.start_time)
