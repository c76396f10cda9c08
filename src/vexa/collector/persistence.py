"""Background persistence: settled segments move from Redis to PostgreSQL, exactly once.

Every ``BACKGROUND_TASK_INTERVAL`` seconds, over the meetings in ``active_meetings`` in a
random order, in batches of ``batch_size()`` meetings (each step one round trip for all of them):

1. take the meetings' locks (``SET NX PX``, renewed while the round runs), so two
   collectors do not work on the same meeting at once (harmless, but wasteful);
2. read their hashes; segments unchanged for ``IMMUTABILITY_THRESHOLD`` seconds are ready;
3. map speakers again (events may have arrived after the draft) and filter hallucinations;
4. upsert the kept ones in one transaction that first takes the meeting rows ``FOR SHARE``
   and re-checks they are not redacted: ``DELETE /meetings`` takes the same row ``FOR
   UPDATE`` before deleting, so the two serialise and a redacted meeting's rows never
   come back, whatever the Redis lock's timing. ``ON CONFLICT (meeting_id, session_uid,
   start_time) DO UPDATE ... WHERE version <= excluded.version`` (see rows.py): a crash
   after COMMIT only means the same rows are written again, and an older draft never
   replaces a newer row;
5. after COMMIT, remove kept and filtered segments with compare-and-delete, so a draft
   that changed since step 2 stays for the next round.

A row PostgreSQL refuses (bad data, not an outage) must not hold back the rest: the
batch is retried meeting by meeting, then that meeting row by row, and each refused
row is moved, with the database's reason, to the dead-letter stream. An outage leaves
everything in Redis, which has no TTL on segments, for the next round.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Row, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.collector import metrics, rows, speakers
from vexa.collector.attribution import attribute, resplit
from vexa.collector.consumer import is_transient
from vexa.collector.filters import TranscriptionFilter
from vexa.collector.meetings import session_starts_many
from vexa.collector.segments import (
    ACTIVE_MEETINGS,
    MeetingLocks,
    StoredSegment,
    compare_and_delete,
    compare_and_delete_many,
    decode,
    drop_meeting,
    event_frame,
    now_utc,
    read_many,
    segments_key,
)
from vexa.db.models import Meeting
from vexa.events import meeting_channel
from vexa.streams import DEAD_LETTER_MAXLEN_DEFAULT
from vexa.tasks import raise_if_cancelled

log = logging.getLogger(__name__)

# Meetings persisted together (one lock call, one read, one transaction and its commit). A
# round splits its meetings into at least BATCHES_PER_ROUND batches so that collectors sharing
# a group share the persisting too: a batch holds its meetings' locks until it commits, and
# another collector's round skips them and takes the next batch. With one batch over all of a
# hundred meetings, one collector persisted everything while the other's round found every lock
# taken (bench/collector.py --cpu-per-collector 0.3: two collectors 1.84x one with one batch,
# 1.95x with four; medians of 4 runs). Batches stay large where there are many meetings: each
# costs a commit, and 40 batches of 25 over 1,000 meetings persisted 0.82x as fast as 5 of 200.
MIN_MEETINGS_PER_BATCH = 25
MAX_MEETINGS_PER_BATCH = 200
BATCHES_PER_ROUND = 8


def batch_size(meetings: int) -> int:
    """How many meetings one batch of a round over ``meetings`` takes."""
    return max(MIN_MEETINGS_PER_BATCH, min(MAX_MEETINGS_PER_BATCH, math.ceil(meetings / BATCHES_PER_ROUND)))


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
        speaker_min_confidence: float = 0.35,
        dead_maxlen: int = DEAD_LETTER_MAXLEN_DEFAULT,
        after_commit: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self.speaker_min_confidence = speaker_min_confidence
        self._sm = sessionmaker
        self.filter = transcript_filter
        self.threshold = timedelta(seconds=immutability_threshold_s)
        self.interval_s = interval_s
        self.lock_ttl_ms = int(max(30.0, 3 * interval_s) * 1000)
        self.dead_stream = dead_stream
        self.dead_maxlen = dead_maxlen
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
            raise_if_cancelled()
            await asyncio.sleep(self.interval_s)

    async def run_once(self, *, force: bool = False) -> int:
        """One round over all active meetings; ``force`` ignores the immutability threshold."""
        meeting_ids: list[int] = []
        for member in await self.redis.smembers(ACTIVE_MEETINGS):
            try:
                meeting_ids.append(int(member))
            except ValueError:
                await self.redis.srem(ACTIVE_MEETINGS, member)
        # Collectors whose rounds start together should not queue behind each other's locks
        # batch after batch.
        random.shuffle(meeting_ids)
        size = batch_size(len(meeting_ids))
        total = 0
        for i in range(0, len(meeting_ids), size):
            total += await self.persist_meetings(meeting_ids[i : i + size], force=force)
        return total

    async def persist_meeting(self, meeting_id: int, *, force: bool = False) -> int:
        return await self.persist_meetings([meeting_id], force=force)

    async def persist_meetings(self, meeting_ids: list[int], *, force: bool = False) -> int:
        locks = MeetingLocks(self.redis, self.lock_ttl_ms)
        held = await locks.acquire(meeting_ids)
        if len(held) < len(meeting_ids):
            log.debug("%d meeting(s) are being persisted by another collector", len(meeting_ids) - len(held))
        if not held:
            return 0
        try:
            return await self._persist_locked(held, force)
        finally:
            await locks.release()

    async def _persist_locked(self, meeting_ids: list[int], force: bool) -> int:
        cutoff = now_utc() - self.threshold
        pending: dict[int, tuple[dict[str, str], dict[str, StoredSegment]]] = {}
        for meeting_id, raw in (await read_many(self.redis, meeting_ids)).items():
            if not raw:  # expired or emptied: leave active_meetings
                await compare_and_delete(self.redis, meeting_id, {})
                continue
            good, bad = decode(raw)
            if bad:
                await self._dead_letter(meeting_id, {f: (raw[f], "unreadable segment value") for f in bad})
            ready = {f: s for f, s in good.items() if force or s.updated_at <= cutoff}
            if ready:
                pending[meeting_id] = (raw, ready)
        if not pending:
            return 0

        meetings = await self._meetings(list(pending))
        for meeting_id in list(pending):
            if meeting_id not in meetings:
                await self._discard(meeting_id, len(pending.pop(meeting_id)[0]))

        remapped = await self._remap_speakers({m: list(ready.values()) for m, (_, ready) in pending.items()})
        kept = {meeting_id: self._keep(meeting_id, segs) for meeting_id, segs in remapped.items()}
        changed, refused, redacted = await self._write_all(kept)

        done: dict[int, dict[str, str]] = {}
        total = 0
        for meeting_id, (raw, ready) in pending.items():
            if meeting_id in redacted:
                await self._discard(meeting_id, len(raw))
                continue
            if self.after_commit is not None:
                await self.after_commit(meeting_id)
            # A re-split piece may have a field the hash never had: dead-letter its own value.
            values = {seg.field: seg.model_dump_json() for seg in kept[meeting_id]}
            bad_rows = {f: (raw.get(f) or values[f], why) for f, why in refused.get(meeting_id, {}).items()}
            if bad_rows:
                await self._dead_letter(meeting_id, bad_rows)
            done[meeting_id] = {f: raw[f] for f in ready if f not in bad_rows}
            metrics.observe_persisted(s for s in kept[meeting_id] if s.field not in bad_rows)
            stored = len(kept[meeting_id]) - len(bad_rows)
            filtered = len(ready) - len(kept[meeting_id])
            self.persisted += stored
            self.filtered += filtered
            total += stored
            log.debug(
                "meeting %s: persisted %d segment(s), filtered %d, refused %d",
                meeting_id, stored, filtered, len(bad_rows),
            )  # fmt: skip
        await compare_and_delete_many(self.redis, done)
        if total:
            log.info("persisted %d segment(s) of %d meeting(s)", total, len(done))
        await self._announce(
            {m: meetings[m] for m in done},
            {m: [s for s in kept[m] if (m, s.session_uid, s.start) in changed] for m in done},
        )
        return total

    async def _meetings(self, meeting_ids: list[int]) -> dict[int, Row[Any]]:
        """id -> (id, platform, native id) of those neither deleted nor redacted."""
        async with self._sm() as session:
            rows = await session.execute(
                select(Meeting.id, Meeting.platform, Meeting.platform_specific_id, Meeting.data).where(
                    Meeting.id.in_(meeting_ids)
                )
            )
            return {r.id: r for r in rows if not (r.data or {}).get("redacted")}

    async def _discard(self, meeting_id: int, count: int) -> None:
        log.info("meeting %s was deleted or redacted; discarding its %d live segment(s)", meeting_id, count)
        await drop_meeting(self.redis, meeting_id)

    def _keep(self, meeting_id: int, ready: list[StoredSegment]) -> list[StoredSegment]:
        kept: list[StoredSegment] = []
        for seg in ready:
            ok, why = self.filter.keep(seg.text)
            if ok:
                kept.append(seg)
            else:
                log.debug("meeting %s: filtered %r (%s)", meeting_id, seg.text[:80], why)
        kept.sort(key=lambda s: (s.session_uid, s.start))
        return kept

    async def _write_all(
        self, kept: dict[int, list[StoredSegment]]
    ) -> tuple[set[tuple[int, str, float]], dict[int, dict[str, str]], set[int]]:
        """(rows changed, meeting -> field -> reason for the rows refused, meetings found redacted).

        All meetings in one transaction; when PostgreSQL refuses it (bad data), meeting by
        meeting, and a refused meeting row by row, so one bad row costs only itself.
        """
        kept = {m: segs for m, segs in kept.items() if segs}
        if not kept:
            return set(), {}, set()
        try:
            changed, redacted = await self._write(kept)
            return changed, {}, redacted
        except sa_exc.DBAPIError as exc:
            if is_transient(exc):
                raise
            log.warning("%d meeting(s): batch refused (%s); retrying in parts", len(kept), _reason(exc))
        changed = set()
        refused: dict[int, dict[str, str]] = {}
        redacted = set()
        for meeting_id, segments in kept.items():
            try:
                if len(kept) == 1:  # that meeting's batch was just refused
                    raise _Refused
                one_changed, one_redacted = await self._write({meeting_id: segments})
            except (sa_exc.DBAPIError, _Refused) as exc:
                if isinstance(exc, sa_exc.DBAPIError) and is_transient(exc):
                    raise
                one_changed, refused[meeting_id], one_redacted = await self._write_each(meeting_id, segments)
            changed |= one_changed
            redacted |= one_redacted
        return changed, refused, redacted

    async def _write(
        self, segments: dict[int, list[StoredSegment]]
    ) -> tuple[set[tuple[int, str, float]], set[int]]:
        """One transaction, fenced by the meeting row locks: (rows changed, meetings redacted meanwhile)."""
        async with self._sm() as session, session.begin():
            alive = await rows.lock_alive(session, list(segments))
            changed = await rows.upsert(session, {m: s for m, s in segments.items() if m in alive})
        return changed, set(segments) - alive

    async def _write_each(
        self, meeting_id: int, segments: list[StoredSegment]
    ) -> tuple[set[tuple[int, str, float]], dict[str, str], set[int]]:
        """Row by row: (rows changed, field -> reason of the rows refused, {meeting_id} if redacted)."""
        changed: set[tuple[int, str, float]] = set()
        refused: dict[str, str] = {}
        for seg in segments:
            try:
                one, redacted = await self._write({meeting_id: [seg]})
            except sa_exc.DBAPIError as exc:
                if is_transient(exc):
                    raise
                refused[seg.field] = f"refused by PostgreSQL: {_reason(exc)}"
                continue
            if redacted:
                return changed, refused, redacted
            changed |= one
        return changed, refused, set()

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
                    maxlen=self.dead_maxlen,
                    approximate=True,
                )
                pipe.eval(_DELETE_IF_SAME, 1, segments_key(meeting_id), field, value)
                await pipe.execute()
            self.dead_lettered += 1
            log.warning("meeting %s: dead-lettered segment %s: %s", meeting_id, field, reason)

    async def _remap_speakers(self, ready: dict[int, list[StoredSegment]]) -> dict[int, list[StoredSegment]]:
        """Speaker events can arrive after a draft was written: attribute once more with all of them.

        A split segment whose pieces are all ready is joined and split anew (the turn change
        may have moved); the pieces' old fields are still removed from the hash by the caller,
        and rows.upsert replaces the segment's earlier pieces in PostgreSQL.
        """
        uids = sorted({s.session_uid for segs in ready.values() for s in segs if not s.speaker_explicit})
        if not uids:
            return ready
        events = await speakers.load_many(self.redis, uids)
        out: dict[int, list[StoredSegment]] = {}
        for meeting_id, segs in ready.items():
            result: list[StoredSegment] = []
            splits: dict[tuple[str, float], list[StoredSegment]] = {}
            for seg in segs:
                if seg.speaker_explicit:
                    result.append(seg)
                elif not seg.words:  # the common case: the overlap with the speaking intervals
                    seg.speaker, seg.speaker_mapping_status = speakers.map_speaker(
                        events[seg.session_uid], seg.start, seg.end_time
                    )
                    result.append(seg)
                elif seg.split_from is not None:
                    splits.setdefault((seg.session_uid, seg.split_from), []).append(seg)
                else:
                    result.append(self._reattributed(seg, events[seg.session_uid]))
            for (uid, start), pieces in splits.items():
                head = next((p for p in pieces if p.start == start and p.pieces is not None), None)
                fields = {p.field for p in pieces}
                if head is not None and fields == {head.field, *(head.pieces or [])}:
                    result += resplit(pieces, events[uid], self.speaker_min_confidence)
                else:  # part of the split is not here (changed meanwhile): each piece as it is
                    result += [self._reattributed(p, events[uid]) for p in pieces]
            out[meeting_id] = result
        return out

    def _reattributed(self, seg: StoredSegment, events: list[speakers.TimedEvent]) -> StoredSegment:
        """The segment with its speaker mapped again, whole (never split here)."""
        (again,) = attribute(seg.model_copy(update={"completed": False}), events, self.speaker_min_confidence)
        return seg.model_copy(
            update={
                "speaker": again.speaker,
                "speaker_mapping_status": again.speaker_mapping_status,
                "speaker_confidence": again.speaker_confidence,
            }
        )

    async def _announce(self, meetings: dict[int, Row[Any]], written: dict[int, list[StoredSegment]]) -> None:
        """One ``transcript.finalized`` event per meeting with rows changed, all in one round trip."""
        written = {m: segs for m, segs in written.items() if segs}
        if not written:
            return
        try:
            async with self._sm() as session:
                starts = await session_starts_many(session, list(written))
            async with self.redis.pipeline(transaction=False) as pipe:
                for meeting_id, segments in written.items():
                    meeting = meetings[meeting_id]
                    prefix, suffix = event_frame(
                        "transcript.finalized", meeting_id, meeting.platform, meeting.platform_specific_id
                    )
                    public = ",".join(
                        s.public_json(starts.get((meeting_id, s.session_uid)), completed=True)
                        for s in segments
                    )
                    pipe.publish(meeting_channel(meeting_id), f"{prefix}[{public}]{suffix}")
                await pipe.execute()
        except Exception:  # the rows are safe; a missed live event is not worth failing the round
            log.warning(
                "could not publish transcript.finalized for %d meeting(s)", len(written), exc_info=True
            )


class _Refused(Exception):
    """A meeting's batch was refused: go straight to row by row."""


_DELETE_IF_SAME = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def _reason(exc: sa_exc.DBAPIError) -> str:
    """The database's own message, first line only (no parameters: they hold the text)."""
    return str(exc.orig).splitlines()[0][:300] if exc.orig is not None else type(exc).__name__
