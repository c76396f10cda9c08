"""What the collector does with each stream message (the stream mechanics live in consumer.py)."""

from __future__ import annotations

import logging
from datetime import UTC

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from vexa import bot_tokens
from vexa.auth import AuthenticatedUser, TokenVerifier
from vexa.collector import speakers
from vexa.collector.attribution import attribute
from vexa.collector.consumer import DeadLetter, Entries
from vexa.collector.meetings import MeetingDirectory
from vexa.collector.segments import SegmentWrite, StoredSegment, event_frame, now_utc, queue_writes
from vexa.events import meeting_channel
from vexa.streams import (
    PAYLOAD_FIELD,
    SessionEndMessage,
    SessionStartMessage,
    SpeakerEvent,
    TranscriptionMessage,
    parse_payload,
)

Parsed = TranscriptionMessage | SessionStartMessage | SessionEndMessage

log = logging.getLogger(__name__)

MAX_LANGUAGE = 10  # transcriptions.language is VARCHAR(10)
MAX_SPEAKER = 255


def validation_summary(exc: ValidationError) -> str:
    """The problems without the input values (the payload holds a token)."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return "; ".join(parts)[:500]


def _payload(fields: dict[str, str]) -> str:
    raw = fields.get(PAYLOAD_FIELD)
    if raw is None:
        raise DeadLetter(f"missing {PAYLOAD_FIELD!r} field")
    return raw


async def authorize(
    redis: Redis,
    verifier: TokenVerifier,
    msg: TranscriptionMessage | SessionStartMessage | SessionEndMessage,
    claims_cache: dict[str, bot_tokens.BotTokenClaims | None] | None = None,
    users_cache: dict[str, AuthenticatedUser | None] | None = None,
) -> tuple[int, int | None]:
    """(user id, meeting id or None) the message may write to, or DeadLetter.

    Our bots' sessions carry their bot token, good for one meeting; a standalone
    producer (``WL_STANDALONE``, an upstream bot) may still send a user's API key.
    ``claims_cache`` / ``users_cache`` reuse a token's lookup within one consumer batch
    (not one SHA-256 of the same API key per message).
    """
    if bot_tokens.is_bot_token(msg.token):
        if claims_cache is not None and msg.token in claims_cache:
            claims = claims_cache[msg.token]
        else:
            claims = await bot_tokens.lookup(redis, msg.token)
            if claims_cache is not None:
                claims_cache[msg.token] = claims
        if claims is None:
            raise DeadLetter("unauthorized: unknown or expired bot token")
        if not claims.covers(msg.platform, msg.meeting_id, msg.meeting_db_id):
            raise DeadLetter(f"unauthorized: the bot token is not for {msg.platform}/{msg.meeting_id}")
        return claims.user_id, claims.meeting_id
    if users_cache is not None and msg.token in users_cache:
        user = users_cache[msg.token]
    else:
        user = await verifier.verify(msg.token)
        if users_cache is not None:
            users_cache[msg.token] = user
    if user is None or not user.usable():
        raise DeadLetter("unauthorized: unknown, revoked or expired token")
    return user.user_id, msg.meeting_db_id


class SegmentHandler:
    """transcription / session_start / session_end messages from ``transcription_segments``.

    A batch is parsed once in ``prepare``, which also reads the speaker events of every
    session in it in one round trip (instead of one per message).
    """

    def __init__(
        self,
        redis: Redis,
        directory: MeetingDirectory,
        verifier: TokenVerifier,
        *,
        min_confidence: float = 0.35,
    ) -> None:
        self.redis = redis
        self.directory = directory
        self.verifier = verifier
        self.min_confidence = min_confidence
        self._parsed: dict[str, Parsed] = {}
        self._events: dict[str, list[speakers.TimedEvent]] = {}
        self._claims: dict[str, bot_tokens.BotTokenClaims | None] = {}  # a batch's bot-token lookups
        self._users: dict[str, AuthenticatedUser | None] = {}  # a batch's API-key lookups

    async def prepare(self, entries: Entries) -> None:
        self._parsed, self._events, self._claims, self._users = {}, {}, {}, {}
        uids: set[str] = set()
        for entry_id, fields in entries:
            raw = (fields or {}).get(PAYLOAD_FIELD)
            if raw is None:
                continue
            try:
                msg = parse_payload(raw)
            except ValidationError:
                continue  # dead-lettered, with the reason, when the entry is handled
            self._parsed[entry_id] = msg
            if msg.uid not in uids and isinstance(msg, TranscriptionMessage):
                for seg in msg.segments:
                    if not seg.speaker or not seg.speaker.strip():
                        uids.add(msg.uid)
                        break
        if uids:
            self._events = await speakers.load_many(self.redis, sorted(uids))

    async def __call__(self, entry_id: str, fields: dict[str, str]) -> SegmentWrite | None:
        msg = self._parsed.pop(entry_id, None)
        if msg is None:
            raw = _payload(fields)
            try:
                msg = parse_payload(raw)
            except ValidationError as exc:
                raise DeadLetter(f"invalid message: {validation_summary(exc)}") from None
        user_id, meeting_db_id = await authorize(self.redis, self.verifier, msg, self._claims, self._users)
        meeting = await self.directory.for_session(
            user_id, msg.platform, msg.meeting_id, msg.uid, meeting_db_id
        )
        if meeting is None:
            which = f" (id {meeting_db_id})" if meeting_db_id is not None else ""
            raise DeadLetter(f"unknown meeting {msg.platform}/{msg.meeting_id}{which} for user {user_id}")

        if isinstance(msg, SessionStartMessage):
            start = msg.start_timestamp
            if start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
            stored = await self.directory.record_session(meeting.id, msg.uid, start)
            log.info("meeting %s: session %s started at %s", meeting.id, msg.uid, stored.isoformat())
            return None
        if isinstance(msg, SessionEndMessage):
            log.info("meeting %s: session %s ended", meeting.id, msg.uid)
            return None
        assert isinstance(msg, TranscriptionMessage)
        segments = await self._segments(msg, entry_id)
        if not segments:
            return None
        session_start = await self.directory.session_start(meeting.id, msg.uid)
        frame = event_frame("transcript.mutable", meeting.id, meeting.platform, meeting.native_id)
        public = [s.public_bytes(session_start) for s in segments.values()]

        # Newer-only: a replayed older draft changes nothing and is not announced.
        return SegmentWrite(meeting.id, segments, meeting_channel(meeting.id), frame, public)

    def commit(self, pipe: Pipeline, writes: list[SegmentWrite]) -> None:
        queue_writes(pipe, writes)

    async def _segments(self, msg: TranscriptionMessage, entry_id: str) -> dict[str, StoredSegment]:
        """Normalised drafts by hash field, one per start (the last one in the message wins),
        speakers mapped.

        A segment with word timings and no speaker of its own (a mixed stream) is attributed
        word by word and, once completed, split where the speaker changes (``attribution``).
        """
        now = now_utc()
        events: list[speakers.TimedEvent] | None = None
        by_field: dict[str, StoredSegment] = {}
        for seg in msg.segments:
            language = seg.language if seg.language and len(seg.language) <= MAX_LANGUAGE else None
            explicit = (seg.speaker or "").strip()[:MAX_SPEAKER] or None
            end = max(seg.end, seg.start)
            if explicit is None:
                if events is None:
                    events = self._events.get(msg.uid)  # read for the whole batch in prepare()
                if events is None:
                    events = await speakers.load_events(self.redis, msg.uid)
            if explicit is not None or not seg.words:
                # The common case, built once with its speaker (no copies): a speaker sent
                # with the segment, or one mapped from the overlap with the speaking intervals.
                speaker, status = (
                    (explicit, speakers.MAPPED)
                    if explicit is not None
                    else speakers.map_speaker(events or [], seg.start, end)
                )
                parts = [
                    StoredSegment(
                        start=seg.start,
                        end_time=end,
                        text=seg.text.strip(),
                        language=language,
                        speaker=speaker,
                        speaker_mapping_status=status,
                        completed=seg.completed,
                        session_uid=msg.uid,
                        updated_at=now,
                        speaker_explicit=explicit is not None,
                        version=entry_id,
                    )
                ]
            else:  # a mixed stream's words: attributed word by word (and split once completed)
                base = StoredSegment(
                    start=seg.start,
                    end_time=end,
                    text=seg.text.strip(),
                    language=language,
                    completed=seg.completed,
                    session_uid=msg.uid,
                    updated_at=now,
                    version=entry_id,
                    words=[(w.start, w.end, w.word) for w in seg.words],
                )
                parts = attribute(base, events or [], self.min_confidence)
            for stored in parts:
                by_field[stored.field] = stored
        return by_field


class SpeakerHandler:
    """``speaker_events_relative`` entries -> ``speaker_events:{uid}`` sorted sets."""

    def __init__(self, redis: Redis, verifier: TokenVerifier, *, ttl_s: int) -> None:
        self.redis = redis
        self.verifier = verifier
        self.ttl_s = ttl_s

    async def prepare(self, entries: Entries) -> None:
        """Nothing to share across a batch: each event is one ZADD."""

    async def _authorized(self, token: str) -> bool:
        if bot_tokens.is_bot_token(token):
            return await bot_tokens.lookup(self.redis, token) is not None
        user = await self.verifier.verify(token)
        return user is not None and user.usable()

    async def __call__(self, entry_id: str, fields: dict[str, str]) -> SpeakerEvent:
        raw = _payload(fields)
        try:
            event = SpeakerEvent.model_validate_json(raw)
        except ValidationError as exc:
            raise DeadLetter(f"invalid speaker event: {validation_summary(exc)}") from None
        # The stream is internal (the transcription service writes it); a token, when sent, must be valid.
        if event.token is not None and not await self._authorized(event.token):
            raise DeadLetter("unauthorized: unknown, revoked or expired token")
        return event

    def commit(self, pipe: Pipeline, writes: list[SpeakerEvent]) -> None:
        for event in writes:
            speakers.queue_store(pipe, event, self.ttl_s)
