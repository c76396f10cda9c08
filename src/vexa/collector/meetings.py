"""Database lookups the consumer makes for every message, with short caches.

A busy meeting sends several messages a second; resolving token -> user ->
meeting and the session's start time from PostgreSQL each time would make the
database the bottleneck, so results are reused for a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.db.models import Meeting, MeetingSession

# Built once: building a select per message cost more CPU than running it (SQLAlchemy caches
# the compiled form, not the construction).
_REF = (Meeting.id, Meeting.platform, Meeting.platform_specific_id)
_BY_ID = select(*_REF).where(
    Meeting.id == bindparam("meeting_id"),
    Meeting.user_id == bindparam("user_id"),
    Meeting.platform == bindparam("platform"),
    Meeting.platform_specific_id == bindparam("native_id"),
)
_RECORDED = (
    select(*_REF)
    .join(MeetingSession, MeetingSession.meeting_id == Meeting.id)
    .where(MeetingSession.session_uid == bindparam("session_uid"), Meeting.user_id == bindparam("user_id"))
    .order_by(MeetingSession.id)
    .limit(1)
)
_NEWEST = (
    select(*_REF)
    .where(
        Meeting.user_id == bindparam("user_id"),
        Meeting.platform == bindparam("platform"),
        Meeting.platform_specific_id == bindparam("native_id"),
    )
    .order_by(Meeting.created_at.desc(), Meeting.id.desc())
    .limit(1)
)
_SESSION_START = select(MeetingSession.session_start_time).where(
    MeetingSession.meeting_id == bindparam("meeting_id"),
    MeetingSession.session_uid == bindparam("session_uid"),
)


@dataclass(frozen=True, slots=True)
class MeetingRef:
    id: int
    platform: str
    native_id: str | None


class MeetingDirectory:
    """Which meeting row a message belongs to, and when each transcription session started.

    A session belongs to one meeting for its whole life. The producer names that
    meeting's database id when it knows it (our bots do); otherwise the session's
    recorded ``meeting_sessions`` row decides, and only a session never seen before
    falls back to the user's newest meeting with the native id. So a backlog from a
    stopped meeting, handled after a new meeting with the same native id started,
    still lands in the meeting it was spoken in.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, ttl_s: float = 5.0) -> None:
        self._sm = sessionmaker
        self._ttl = ttl_s
        self._bound: dict[tuple[int, str], tuple[float, MeetingRef]] = {}
        self._sessions: dict[tuple[int, str], datetime] = {}
        self._no_session: dict[tuple[int, str], float] = {}

    async def for_session(
        self, user_id: int, platform: str, native_id: str, session_uid: str, meeting_db_id: int | None
    ) -> MeetingRef | None:
        """The meeting this session's messages belong to, or None (then the message is dead-lettered)."""
        key = (user_id, session_uid)
        now = time.monotonic()
        hit = self._bound.get(key)
        if hit and hit[0] > now:
            return hit[1]
        if meeting_db_id is not None:
            ref = await self._by_id(user_id, platform, native_id, meeting_db_id)
        else:
            ref = await self._recorded(user_id, session_uid)
            ref = ref or await self._newest(user_id, platform, native_id)
        if ref is not None:
            self._bound[key] = (now + self._ttl, ref)
        return ref

    async def _by_id(self, user_id: int, platform: str, native_id: str, meeting_id: int) -> MeetingRef | None:
        """That row, if it is the caller's and still has this platform and native id."""
        params = {"meeting_id": meeting_id, "user_id": user_id, "platform": platform, "native_id": native_id}
        async with self._sm() as session:
            row = (await session.execute(_BY_ID, params)).first()
        return MeetingRef(row[0], row[1], row[2]) if row is not None else None

    async def _recorded(self, user_id: int, session_uid: str) -> MeetingRef | None:
        """The meeting a session_start already bound this session to."""
        async with self._sm() as session:
            row = (await session.execute(_RECORDED, {"session_uid": session_uid, "user_id": user_id})).first()
        return MeetingRef(row[0], row[1], row[2]) if row is not None else None

    async def _newest(self, user_id: int, platform: str, native_id: str) -> MeetingRef | None:
        """The user's most recent meeting with this platform + native id (a session's first message)."""
        params = {"user_id": user_id, "platform": platform, "native_id": native_id}
        async with self._sm() as session:
            row = (await session.execute(_NEWEST, params)).first()
        return MeetingRef(row[0], row[1], row[2]) if row is not None else None

    def forget_meeting(self, meeting_id: int) -> None:
        for key, (_, ref) in list(self._bound.items()):
            if ref.id == meeting_id:
                self._bound.pop(key, None)

    async def record_session(self, meeting_id: int, session_uid: str, start: datetime) -> datetime:
        """Idempotent: the first session_start wins; returns the stored start."""
        async with self._sm() as session:
            await session.execute(
                insert(MeetingSession)
                .values(meeting_id=meeting_id, session_uid=session_uid, session_start_time=start)
                .on_conflict_do_nothing(constraint="uq_meeting_sessions_uid")
            )
            params = {"meeting_id": meeting_id, "session_uid": session_uid}
            stored = (await session.execute(_SESSION_START, params)).scalar_one()
            await session.commit()
        self._sessions[(meeting_id, session_uid)] = stored
        self._no_session.pop((meeting_id, session_uid), None)
        return stored

    async def session_start(self, meeting_id: int, session_uid: str) -> datetime | None:
        """Known session starts are cached for good (they never change); unknown ones are re-read."""
        key = (meeting_id, session_uid)
        cached = self._sessions.get(key)
        if cached is not None:
            return cached
        if self._no_session.get(key, 0.0) > time.monotonic():
            return None
        async with self._sm() as session:
            params = {"meeting_id": meeting_id, "session_uid": session_uid}
            found = (await session.execute(_SESSION_START, params)).scalar_one_or_none()
        if found is not None:
            self._sessions[key] = found
        else:  # a session without session_start: do not ask again for every message
            self._no_session[key] = time.monotonic() + max(self._ttl, 1.0)
        return found


async def session_starts_many(
    session: AsyncSession, meeting_ids: list[int]
) -> dict[tuple[int, str], datetime]:
    """(meeting id, session uid) -> start, for several meetings in one query."""
    rows = await session.execute(
        select(
            MeetingSession.meeting_id, MeetingSession.session_uid, MeetingSession.session_start_time
        ).where(MeetingSession.meeting_id.in_(meeting_ids))
    )
    return {(meeting_id, uid): start for meeting_id, uid, start in rows}
