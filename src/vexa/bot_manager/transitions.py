"""The persisted state machine: every status change of a meeting goes through ``transition``.

It locks the meeting row, checks the table in ``lifecycle.py``, records history,
times and the transcript's speakers and languages, commits, and only then
announces the change (see ``announcer.py``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from vexa import bot_tokens
from vexa.bot_manager.announcer import Announcer
from vexa.bot_manager.errors import ServiceError
from vexa.bot_manager.lifecycle import CompletionReason, check_transition, is_terminal
from vexa.bot_manager.reasons import error_details, safe_details
from vexa.bot_manager.transcript_summary import merge_unique, transcript_speakers_and_languages
from vexa.db import Database
from vexa.db.models import Meeting, MeetingStatus
from vexa.meetings import CALLBACK_TOKEN_HASH_KEY
from vexa.recordings.jobs import enqueue_postprocess
from vexa.recordings.records import RECORDINGS_KEY

log = logging.getLogger(__name__)

S = MeetingStatus


class MeetingTransitions:
    def __init__(
        self, db: Database, redis: Redis, announcer: Announcer, *, bot_token_grace_s: float = 3600.0
    ) -> None:
        self.bot_token_grace_s = bot_token_grace_s
        self.db = db
        self.redis = redis
        self.announcer = announcer

    async def transition(
        self,
        meeting_id: int,
        new_status: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        participants: list[str] | None = None,
        source: str,
    ) -> tuple[Meeting, bool]:
        """Move one meeting (row-locked) and announce it; returns (meeting, changed).

        Raises ``IllegalTransition`` (409) for moves the table forbids; repeating
        the current status is a harmless no-op so retried callbacks are safe.
        """
        new = MeetingStatus(new_status)
        async with self.db.sessionmaker() as session, session.begin():
            meeting = await session.get(Meeting, meeting_id, with_for_update=True, populate_existing=True)
            if meeting is None:
                raise ServiceError(404, f"Meeting {meeting_id} not found.")
            old = meeting.status
            changed = check_transition(old, new)
            data = dict(meeting.data or {})
            if participants:
                data["participants"] = merge_unique(data.get("participants"), participants)
            if not changed:
                if participants:
                    meeting.data = data
                return meeting, False
            now = datetime.now(UTC)
            if is_terminal(new):
                reason = reason or self._default_reason(old, new)
            entry: dict[str, Any] = {
                "from": old,
                "to": new.value,
                "timestamp": now.isoformat(),
                "source": source,
            }
            if reason:
                entry["reason"] = str(reason)
            data["status_transition"] = [*(data.get("status_transition") or []), entry]
            if new == S.active and meeting.start_time is None:
                meeting.start_time = now
            if is_terminal(new):
                meeting.end_time = now
                data["completion_reason"] = str(reason)
                problem = error_details(new.value, str(reason), details)
                if problem:
                    data["error_details"] = problem
                if extra := safe_details(details):
                    data["completion_details"] = extra
                speakers, languages = await transcript_speakers_and_languages(session, self.redis, meeting_id)
                data["participants"] = merge_unique(data.get("participants"), speakers)
                data["languages"] = merge_unique(data.get("languages"), languages)
            meeting.status = new.value
            meeting.data = data
            await session.flush()
            await session.refresh(meeting)
        log.info(
            "meeting %s: %s -> %s%s (%s)",
            meeting_id,
            old,
            new.value,
            f" [{reason}]" if reason else "",
            source,
        )
        if is_terminal(new):
            await self._end_bot_token(meeting)
        await self.announcer.announce(meeting, str(reason) if reason else None, old=old, source=source)
        if is_terminal(new) and (meeting.data or {}).get(RECORDINGS_KEY):
            try:
                await enqueue_postprocess(self.redis, meeting_id)
            except RedisError:
                log.error("meeting %s: could not queue its recording's post-processing", meeting_id)
        return meeting, True

    async def _end_bot_token(self, meeting: Meeting) -> None:
        """The ended meeting's bot token opens no new session (segments in flight still land)."""
        token_hash = (meeting.data or {}).get(CALLBACK_TOKEN_HASH_KEY)
        if not token_hash:
            return
        try:
            await bot_tokens.mark_ended(self.redis, token_hash, self.bot_token_grace_s)
        except RedisError as exc:  # it still expires with its TTL
            log.warning("meeting %s: could not end its bot token (%s)", meeting.id, type(exc).__name__)

    @staticmethod
    def _default_reason(old: str, new: MeetingStatus) -> CompletionReason:
        if new == S.completed:
            return CompletionReason.stopped
        if old in (S.requested, S.joining, S.awaiting_admission):
            return CompletionReason.join_error
        return CompletionReason.bot_crashed
