"""The Redis Stream contract between the transcription service and the collector.

Both sides import these models, so a field renamed here breaks both test suites
at once instead of silently dropping segments in production. Every stream entry
carries one field, ``payload``, holding the JSON of one message below.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator

from vexa.schemas import storable_problem

PAYLOAD_FIELD = "payload"
DEAD_LETTER_SUFFIX = ":dead"
DEAD_LETTER_MAXLEN_DEFAULT = 10_000
REDACTED = "[redacted]"
_TOKEN_TEXT = re.compile(r'("?token"?\s*[:=]\s*)("[^"]*"|\'[^\']*\'|[^\s,}]+)', re.IGNORECASE)
SEQ_BITS = 20  # stream entry ids "ms-seq" pack into one BIGINT as ms << 20 | seq


def redact_tokens(payload: str) -> str:
    """The payload without any ``token`` value, for the dead-letter stream.

    A dead letter is kept for people to read; it must not hand them a working key.
    Valid JSON is redacted structurally; anything else by pattern.
    """
    try:
        data = json.loads(payload)
    except ValueError:
        return _TOKEN_TEXT.sub(lambda m: m.group(1) + '"' + REDACTED + '"', payload)
    return json.dumps(_redact(data), separators=(",", ":"))


def _redact(value: object) -> object:
    if isinstance(value, dict):
        return {k: (REDACTED if k.lower() == "token" else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair (``"1700000000000-3"`` -> ``(1700000000000, 3)``).

    Redis assigns entry ids in the order the producer's XADDs arrive, and one
    transcription session publishes through one ordered queue, so the entry id is
    the producer's own order of a segment's drafts: a replayed or re-claimed older
    message has a smaller id than the newer one already applied.
    """
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def entry_version(entry_id: str) -> int:
    """``entry_order`` packed into one BIGINT for PostgreSQL (monotonic until the year 2248)."""
    ms, seq = entry_order(entry_id)
    return (ms << SEQ_BITS) | min(seq, (1 << SEQ_BITS) - 1)


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    uid: str = Field(min_length=1, max_length=255, description="Session id (one WebSocket connection).")
    platform: str = Field(min_length=1, max_length=100)
    meeting_id: str = Field(min_length=1, max_length=255, description="The platform's native meeting id.")
    token: str = Field(
        min_length=1,
        max_length=512,
        description="The bot's meeting token (vexa.bot_tokens) or, from a standalone producer, a "
        "user's API key; the collector verifies it. Never stored, never dead-lettered.",
    )
    meeting_db_id: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="The meeting's database id, when the producer knows it (our bots send it): binds "
        "the session to that meeting, so a late backlog never lands in a newer meeting with the same "
        "native id.",
    )

    @field_validator("uid", "platform", "meeting_id")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        """Refused on parsing (the collector dead-letters the entry with this reason): PostgreSQL text
        cannot hold NUL, and NUL separates the parts of the collector's write-script argument."""
        if "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        return value


class SegmentWord(BaseModel):
    """One word's timing (ours, optional): lets a mixed stream be attributed per word."""

    model_config = ConfigDict(extra="ignore")

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    word: str = Field(max_length=200)
    probability: float | None = Field(None, ge=0, le=1)


class Segment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str
    language: str | None = None
    completed: bool = False
    speaker: str | None = None
    words: list[SegmentWord] | None = Field(None, max_length=2000)

    @field_validator("text", "speaker", "language")
    @classmethod
    def _storable(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Refused here (and dead-lettered) rather than by PostgreSQL at persistence time.

        From JSON (every segment the collector reads) only NUL needs a look: the JSON parser
        already refuses a lone surrogate, the other thing PostgreSQL's text cannot hold.
        """
        if value is None:
            return value
        if "\x00" in value:
            raise ValueError("value: NUL characters are not allowed")
        problem = storable_problem(value) if info.mode == "python" else None
        if problem:
            raise ValueError(problem)
        return value


class TranscriptionMessage(_Message):
    type: Literal["transcription"] = "transcription"
    segments: list[Segment]


class SessionStartMessage(_Message):
    type: Literal["session_start"] = "session_start"
    start_timestamp: datetime = Field(description="Absolute wall-clock time of audio offset 0 (UTC).")


class SessionEndMessage(_Message):
    type: Literal["session_end"] = "session_end"
    end_timestamp: datetime | None = None


StreamMessage = Annotated[
    TranscriptionMessage | SessionStartMessage | SessionEndMessage, Field(discriminator="type")
]
_adapter: TypeAdapter[StreamMessage] = TypeAdapter(StreamMessage)


def parse_payload(raw: str | bytes) -> TranscriptionMessage | SessionStartMessage | SessionEndMessage:
    """Raises ``pydantic.ValidationError`` for bad JSON or a bad shape."""
    return _adapter.validate_json(raw)


def to_fields(message: BaseModel) -> dict[str, str]:
    """The XADD field map for one message."""
    return {PAYLOAD_FIELD: message.model_dump_json()}


class SpeakerEvent(BaseModel):
    """One entry of the ``speaker_events_relative`` stream (also fields-as-JSON in ``payload``)."""

    model_config = ConfigDict(extra="ignore")

    uid: str = Field(description="Transcription session id the times are relative to.")
    platform: str | None = None
    meeting_id: str | None = None
    token: str | None = None
    event_type: Literal["SPEAKER_START", "SPEAKER_END"]
    participant_name: str = Field(min_length=1, max_length=255)
    participant_id: str | None = None
    relative_timestamp_ms: float = Field(ge=0, description="Milliseconds since the session's audio offset 0.")
