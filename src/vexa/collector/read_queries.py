"""The collector's hot read statements, in plain SQL for ``vexa.db.reads.ReadPool``.

Each is a fixed statement (asyncpg prepares it once per connection) and every one
is scoped to the caller: a meeting is only ever found through ``user_id``.
``MeetingFilters`` become parameters, never SQL text: ``NULL`` means "no filter",
and ``LIMIT NULL`` means no limit.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

import asyncpg

from vexa.db.reads import ReadPool
from vexa.meeting_filters import MeetingFilters
from vexa.platforms import Platform

_MEETING_COLUMNS = (
    "m.id, m.user_id, m.platform, m.platform_specific_id, m.status, m.bot_container_id, "
    "m.start_time, m.end_time, m.data, m.created_at, m.updated_at"
)
_FILTERS = (
    "m.user_id = $1 AND ($2::text[] IS NULL OR m.status = ANY($2::text[])) "
    "AND ($3::text IS NULL OR m.platform = $3::text)"
)
_LIST = (
    f"SELECT {_MEETING_COLUMNS} FROM meetings m WHERE {_FILTERS} "
    "ORDER BY m.created_at DESC, m.id DESC LIMIT $4 OFFSET $5"
)
_COUNT = f"SELECT count(*) FROM meetings m WHERE {_FILTERS}"

_FIND = (
    "SELECT m.id FROM meetings m WHERE m.user_id = $1 AND m.platform = $2 AND m.platform_specific_id = $3 "
    "AND ($4::int IS NULL OR m.id = $4::int) ORDER BY m.created_at DESC, m.id DESC LIMIT 1"
)


def _version_of(table: str) -> str:
    """A value that changes whenever any row of ``table`` for the meeting is inserted, updated or
    deleted: the row count plus the sum and maximum of the rows' ``xmin``. Every insert or update
    gives the row the writing transaction's id, which no existing row carries, so the sum moves;
    a delete alone lowers the count (see ``transcript_cache`` for the full argument)."""
    return (
        f"(SELECT count(*)::text || ':' || coalesce(sum(x.xmin::text::bigint), 0)::text || ':' "
        f"|| coalesce(max(x.xmin::text::bigint), 0)::text FROM {table} x WHERE x.meeting_id = m.id)"
    )


# The meeting row and the version of everything a transcript is made of, in one snapshot.
_WITH_VERSION = (
    f"SELECT {_MEETING_COLUMNS}, m.xmin::text || '|' || {_version_of('transcriptions')} || '|' || "
    f"{_version_of('meeting_sessions')} || '|' || {_version_of('final_segments')} AS version "
    "FROM meetings m WHERE m.id = $1 AND m.user_id = $2"
)

_SEGMENTS = (
    "SELECT start_time, end_time, text, language, created_at, speaker, speaker_mapping_status, "
    "speaker_confidence, session_uid, version, split_from FROM transcriptions WHERE meeting_id = $1"
)
_SESSION_STARTS = "SELECT session_uid, session_start_time FROM meeting_sessions WHERE meeting_id = $1"


def as_meeting(record: asyncpg.Record) -> Any:
    """Attribute access over a meeting record, for ``vexa.meetings.meeting_response``."""
    return SimpleNamespace(**dict(record))


async def list_meetings(pool: ReadPool, user_id: int, filters: MeetingFilters) -> list[Any]:
    rows = await pool.fetch(
        _LIST,
        user_id,
        list(filters.statuses) or None,
        filters.platform.value if filters.platform is not None else None,
        filters.limit,
        filters.offset,
    )
    return [as_meeting(r) for r in rows]


async def count_meetings(pool: ReadPool, user_id: int, filters: MeetingFilters) -> int:
    platform = filters.platform.value if filters.platform is not None else None
    return int(await pool.fetchval(_COUNT, user_id, list(filters.statuses) or None, platform))


async def find_meeting_id(
    pool: ReadPool, user_id: int, platform: Platform, native_id: str, meeting_id: int | None
) -> int | None:
    """The caller's newest meeting with that native id (or that exact meeting), like ``_find_meeting``."""
    return await pool.fetchval(_FIND, user_id, platform.value, native_id, meeting_id)


async def meeting_with_version(pool: ReadPool, meeting_id: int, user_id: int) -> tuple[Any, str] | None:
    """The meeting and its transcript version, read in one statement (one snapshot)."""
    row = await pool.fetchrow(_WITH_VERSION, meeting_id, user_id)
    if row is None:
        return None
    values = dict(row)
    version = values.pop("version")
    return SimpleNamespace(**values), version


async def stored_segments(pool: ReadPool, meeting_id: int) -> list[asyncpg.Record]:
    return list(await pool.fetch(_SEGMENTS, meeting_id))


async def session_starts(pool: ReadPool, meeting_id: int) -> dict[str, datetime]:
    return {uid: start for uid, start in await pool.fetch(_SESSION_STARTS, meeting_id)}
