"""The mutable transcript in Redis: ``meeting:{id}:segments`` (see docs/CONTRACTS.md).

A segment stays here, overwritten by every newer draft of the same start, until
it has not changed for ``IMMUTABILITY_THRESHOLD`` seconds; the persister then
moves it to PostgreSQL. Removal is compare-and-delete, so a draft that changed
after the persister read it is never lost.

"Newer" is the producer's order, not the collector's clock: every value carries
its stream entry id as ``version`` and a write replaces a field only when its
version is higher (``_WRITE_NEWER``), so a message replayed after a restart or
handled late by a second collector never brings back older text. The hash has no
TTL: what is not yet in PostgreSQL must not expire during a database outage.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from vexa.events import build_event
from vexa.keys import segments_key
from vexa.schemas import TranscriptionSegment
from vexa.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ACTIVE_MEETINGS = "active_meetings"


def segment_field(session_uid: str, start: float) -> str:
    return f"{session_uid}:{start:.3f}"


def persist_lock_key(meeting_id: int) -> str:
    return f"collector:persist_lock:{meeting_id}"


class StoredSegment(BaseModel):
    """The JSON value of one hash field. ``speaker_explicit`` (ours) marks a speaker sent with the segment."""

    model_config = ConfigDict(extra="ignore")

    start: float
    end_time: float
    text: str
    language: str | None = None
    speaker: str | None = None
    speaker_mapping_status: str | None = None
    speaker_confidence: float | None = None
    words: list[tuple[float, float, str]] | None = None  # mixed stream: kept to re-attribute later
    # A completed mixed-stream segment is stored as pieces split at speaker changes: each piece
    # has the segment's start here; the first (same start) lists the other pieces' fields, so a
    # newer revision of the segment can remove the pieces its own split no longer has.
    split_from: float | None = None
    pieces: list[str] | None = None
    completed: bool = False
    session_uid: str
    updated_at: datetime
    speaker_explicit: bool = False
    version: str = "0-0"  # the stream entry id of the message that carried this draft

    @property
    def field(self) -> str:
        return segment_field(self.session_uid, self.start)

    def dump_bytes(self) -> bytes:
        """``model_dump_json()`` as UTF-8, byte for byte, at a fraction of its cost: the consumer
        writes one per segment to Redis. Fields are plain JSON types (checked when the model was
        built), so orjson can write the model's own field dict
        (``tests/collector/test_collector_json.py``)."""
        return orjson.dumps(self.__dict__, option=orjson.OPT_UTC_Z)

    def public_json(self, session_start: datetime | None, *, completed: bool | None = None) -> str:
        """``to_public(session_start).model_dump_json()`` without building the public model
        (the hot path of every live event); ``completed`` overrides the stored flag."""
        return self.public_bytes(session_start, completed=completed).decode()

    def public_bytes(self, session_start: datetime | None, *, completed: bool | None = None) -> bytes:
        """``public_json()`` as UTF-8, as it goes to Redis."""
        return orjson.dumps(
            {
                "start": self.start,
                "end": self.end_time,
                "text": self.text,
                "language": self.language,
                "created_at": None,
                "speaker": self.speaker,
                "speaker_mapping_status": self.speaker_mapping_status,
                "speaker_confidence": self.speaker_confidence,
                "absolute_start_time": absolute(session_start, self.start),
                "absolute_end_time": absolute(session_start, self.end_time),
                "completed": self.completed if completed is None else completed,
                "session_uid": self.session_uid,
            },
            option=orjson.OPT_UTC_Z,
        )

    def to_public(
        self, session_start: datetime | None, created_at: datetime | None = None
    ) -> TranscriptionSegment:
        return TranscriptionSegment(
            start=self.start,
            end=self.end_time,
            text=self.text,
            language=self.language,
            created_at=created_at,
            speaker=self.speaker,
            speaker_mapping_status=self.speaker_mapping_status,  # type: ignore[arg-type]
            speaker_confidence=self.speaker_confidence,
            absolute_start_time=absolute(session_start, self.start),
            absolute_end_time=absolute(session_start, self.end_time),
            completed=self.completed,
            session_uid=self.session_uid,
        )


def absolute(session_start: datetime | None, offset_s: float) -> datetime | None:
    # timedelta(0, s) is timedelta(seconds=s) without the keyword parsing (twice per live segment)
    return session_start + timedelta(0, offset_s) if session_start is not None else None


def now_utc() -> datetime:
    return datetime.now(UTC)


# Per segment: write only when the stored value's version is older than ours (entry ids
# compared as (ms, seq) numbers; each part is below 2^53, so Lua numbers hold them exactly).
# One call carries a whole consumer batch: one argument per stream message, its parts
# joined by NUL -- meeting, channel, event prefix, event suffix, then field, version,
# value, public JSON per segment -- and its meeting's hash in KEYS[1 + g]. NUL cannot
# occur inside a part (JSON escapes it; a session uid with one is refused before), and
# cutting at it is a fraction of what decoding JSON costs Redis. A message's live event is
# assembled here from the segments actually written, so it never announces a draft the
# hash refused. Replacing the first piece of a split segment (its value lists ``pieces``)
# removes that split's other pieces older than the write, so a revision split elsewhere
# leaves no stale piece behind. Each meeting joins active_meetings once per call.
_WRITE_NEWER = """
local function order(v)
  local ms, seq = string.match(v or '', '^(%d+)-(%d+)$')
  return tonumber(ms or 0), tonumber(seq or 0)
end
local function parts(s)
  local out, n, p = {}, 0, 1
  while true do
    local q = string.find(s, '\\0', p, true)
    n = n + 1
    if not q then
      out[n] = string.sub(s, p)
      return out, n
    end
    out[n] = string.sub(s, p, q - 1)
    p = q + 1
  end
end
local total = 0
local meetings, seen = {}, {}
for g = 2, #KEYS do
  local key = KEYS[g]
  local w, n = parts(ARGV[g - 1])
  local meeting, channel, prefix, suffix = w[1], w[2], w[3], w[4]
  local written = {}
  for j = 5, n, 4 do
    local current = redis.call('HGET', key, w[j])
    local newer = true
    local old_pieces = nil
    local nms, nseq = order(w[j + 1])
    if current then
      local ok, old = pcall(cjson.decode, current)
      if ok and type(old) == 'table' then
        local oms, oseq = order(old['version'])
        newer = nms > oms or (nms == oms and nseq > oseq)
        if type(old['pieces']) == 'table' then
          old_pieces = old['pieces']
        end
      end
    end
    if newer and old_pieces then
      -- A revision of a split segment: the earlier split's pieces go (the new ones follow).
      for _, piece in ipairs(old_pieces) do
        local value = redis.call('HGET', key, piece)
        if value then
          local ok, p = pcall(cjson.decode, value)
          local pms, pseq = order(ok and type(p) == 'table' and p['version'] or '')
          if pms < nms or (pms == nms and pseq < nseq) then
            redis.call('HDEL', key, piece)
          end
        end
      end
    end
    if newer then
      redis.call('HSET', key, w[j], w[j + 2])
      written[#written + 1] = w[j + 3]
    end
  end
  if not seen[meeting] then
    seen[meeting] = true
    meetings[#meetings + 1] = meeting
  end
  if #written > 0 and channel ~= '' then
    redis.call('PUBLISH', channel, prefix .. '[' .. table.concat(written, ',') .. ']' .. suffix)
  end
  total = total + #written
end
for i = 1, #meetings, 1000 do
  redis.call('SADD', KEYS[1], unpack(meetings, i, math.min(i + 999, #meetings)))
end
return total
"""
_SEGMENTS_SLOT = "\x00segments\x00"
_SEP = b"\x00"


@dataclass(slots=True)
class SegmentWrite:
    """One stream message's drafts for one meeting, and the live event announcing those written."""

    meeting_id: int
    segments: dict[str, StoredSegment]  # by hash field
    channel: str = ""
    frame: tuple[str, str] = ("", "")  # the event's JSON before and after its segment list
    public: list[bytes] | None = None  # each segment's public JSON, for the event

    def arg(self) -> bytes:
        """This write as the script's one argument (``_WRITE_NEWER``)."""
        parts = [_header(self.meeting_id, self.channel, self.frame)]
        for i, (field, seg) in enumerate(self.segments.items()):
            parts += [
                field.encode(),
                seg.version.encode(),
                seg.dump_bytes(),
                self.public[i] if self.public else b"null",
            ]
        return _SEP.join(parts)


@functools.lru_cache(maxsize=4096)
def _header(meeting_id: int, channel: str, frame: tuple[str, str]) -> bytes:
    """A write's leading parts (the same for every message of a meeting)."""
    prefix, suffix = frame if channel else ("", "")
    return _SEP.join(p.encode() for p in (str(meeting_id), channel, prefix, suffix))


@functools.lru_cache(maxsize=4096)
def event_frame(event_type: str, meeting_id: int, platform: str, native_id: str | None) -> tuple[str, str]:
    """A meeting's live event as JSON around its segment list, built once per meeting."""
    skeleton = json.dumps(
        build_event(event_type, meeting_id, platform, native_id, {"segments": _SEGMENTS_SLOT})
    )  # type: ignore[arg-type]
    prefix, _, suffix = skeleton.partition(json.dumps(_SEGMENTS_SLOT))
    return prefix, suffix


def queue_writes(pipe: Pipeline, writes: list[SegmentWrite]) -> None:
    """Newer-only HSET of every segment + SADD active_meetings, as ONE call in the caller's MULTI.

    Writes are applied in list order (stream order); with a channel, each write's event
    is published there carrying the segments of that write actually stored.
    """
    writes = [w for w in writes if w.segments]
    if not writes:
        return
    keys = [ACTIVE_MEETINGS] + [segments_key(w.meeting_id) for w in writes]
    pipe.eval(_WRITE_NEWER, len(keys), *keys, *(w.arg() for w in writes))


async def read_raw(redis: Redis, meeting_id: int) -> dict[str, str]:
    return await redis.hgetall(segments_key(meeting_id))


def decode(raw: dict[str, str]) -> tuple[dict[str, StoredSegment], list[str]]:
    """(field -> segment, fields that do not parse)."""
    good: dict[str, StoredSegment] = {}
    bad: list[str] = []
    for field, value in raw.items():
        try:
            good[field] = StoredSegment.model_validate_json(value)
        except ValidationError:
            bad.append(field)
    return good, bad


# Delete each field only if it still holds the value we read; drop the meeting from
# active_meetings when its hash is empty (in the same atomic step, so a concurrent
# write cannot slip between the HLEN check and the SREM).
_COMPARE_AND_DELETE = """
local removed = 0
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
end
return removed
"""

_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


async def compare_and_delete(
    redis: Redis, meeting_id: int, expected: dict[str, str], chunk: int = 500
) -> int:
    removed = 0
    items = list(expected.items())
    for i in range(0, max(len(items), 1), chunk):
        args: list[str] = [str(meeting_id)]
        for field, value in items[i : i + chunk]:
            args += [field, value]
        removed += int(
            await redis.eval(_COMPARE_AND_DELETE, 2, segments_key(meeting_id), ACTIVE_MEETINGS, *args)
        )
    return removed


async def drop_meeting(redis: Redis, meeting_id: int) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(segments_key(meeting_id))
        pipe.srem(ACTIVE_MEETINGS, str(meeting_id))
        await pipe.execute()


class MeetingLock:
    """One meeting's persist lock: what ``DELETE /meetings`` holds while it removes the rows.

    The lock only avoids wasted work: correctness against a concurrent ``DELETE /meetings``
    comes from the meeting row lock both take in PostgreSQL (see persistence.py).
    """

    def __init__(self, redis: Redis, meeting_id: int, ttl_ms: int) -> None:
        self.meeting_id = meeting_id
        self._locks = MeetingLocks(redis, ttl_ms)

    @property
    def token(self) -> str:
        return self._locks.token

    @property
    def lost(self) -> bool:
        return self.meeting_id in self._locks.lost

    async def acquire(self) -> bool:
        return bool(await self._locks.acquire([self.meeting_id]))

    async def release(self) -> None:
        await self._locks.release()


class MeetingLocks:
    """The persist locks of meetings (``SET NX PX`` with one owner token), taken, renewed and
    released in one round trip for all of them, so a persistence round over hundreds of
    meetings costs three Redis calls for its locks.

    While held, a task renews the TTLs every third of it, so a round slower than the TTL
    (a big meeting, a slow database) keeps its locks.
    """

    def __init__(self, redis: Redis, ttl_ms: int) -> None:
        self.redis = redis
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(8)
        self.held: list[int] = []
        self.lost: set[int] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def acquire(self, meeting_ids: list[int]) -> list[int]:
        """The meetings whose lock we got (the others are being persisted elsewhere)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for meeting_id in meeting_ids:
                pipe.set(persist_lock_key(meeting_id), self.token, nx=True, px=self.ttl_ms)
            got = await pipe.execute()
        self.held = [m for m, ok in zip(meeting_ids, got, strict=True) if ok]
        if self.held:
            self._renewer = asyncio.create_task(self._renew(), name="renew-persist-locks")
        return self.held

    async def _each(self, script: str, *args: str) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for meeting_id in self.held:
                pipe.eval(script, 1, persist_lock_key(meeting_id), self.token, *args)
            return await pipe.execute()

    async def _renew(self) -> None:
        while self.held:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                renewed = await self._each(_RENEW_LOCK, str(self.ttl_ms))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not renew %d persist lock(s)", len(self.held), exc_info=True)
                continue
            lost = [m for m, ok in zip(self.held, renewed, strict=True) if not ok]
            if lost:
                self.lost.update(lost)
                self.held = [m for m in self.held if m not in self.lost]
                log.warning("persist locks of meetings %s were lost (expired or taken over)", lost)

    async def release(self) -> None:
        await cancel_and_wait(self._renewer)
        self._renewer = None
        try:
            await self._each(_RELEASE_LOCK)
        except Exception:  # the locks expire by themselves; never mask the caller's outcome
            log.warning("could not release %d persist lock(s)", len(self.held), exc_info=True)
        self.held = []


async def read_many(redis: Redis, meeting_ids: list[int]) -> dict[int, dict[str, str]]:
    """Several meetings' hashes in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for meeting_id in meeting_ids:
            pipe.hgetall(segments_key(meeting_id))
        raws = await pipe.execute()
    return dict(zip(meeting_ids, raws, strict=True))


async def compare_and_delete_many(redis: Redis, expected: dict[int, dict[str, str]], chunk: int = 500) -> int:
    """``compare_and_delete`` for several meetings in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for meeting_id, fields in expected.items():
            items = list(fields.items())
            for i in range(0, max(len(items), 1), chunk):
                args: list[str] = [str(meeting_id)]
                for field, value in items[i : i + chunk]:
                    args += [field, value]
                pipe.eval(_COMPARE_AND_DELETE, 2, segments_key(meeting_id), ACTIVE_MEETINGS, *args)
        return sum(int(n) for n in await pipe.execute())
