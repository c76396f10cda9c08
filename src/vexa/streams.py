"""The Redis Stream contract between the transcription service and the collector.

Both sides import these models, so a field renamed here breaks both test suites
at once instead of silently dropping segments in production. Every stream entry
carries one field, ``payload``, holding the JSON of one message below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PAYLOAD_FIELD = "payload"
DEAD_LETTER_SUFFIX = ":dead"


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    uid: str = Field(min_length=1, max_length=255, description="Session id (one WebSocket connection).")
    platform: str = Field(min_length=1, max_length=100)
    meeting_id: str = Field(min_length=1, max_length=255, description="The platform's native meeting id.")
    token: str = Field(
        min_length=1, max_length=512, description="The user's API key; the collector verifies it."
    )


class Segment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str
    language: str | None = None
    completed: bool = False
    speaker: str | None = None


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
