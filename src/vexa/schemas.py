"""Public JSON shapes, shared by the services that serve them and the gateway's OpenAPI.

Field names and nesting match upstream Vexa's public API, so existing clients
parse our responses unchanged; our additions are extra optional fields only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
    model_validator,
)

from vexa.platforms import Platform, native_id_problem, passcode_problem
from vexa.webhooks.events import normalize_choice

Task = Literal["transcribe", "translate"]
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$"
MAX_VOCABULARY_CHARS = 900  # joined with ", " it must fit the transcription session's hotwords (1,000)


def storable_problem(value: Any, where: str = "") -> str | None:
    """Why PostgreSQL could not store ``value`` (text and jsonb refuse NUL and lone surrogates)."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{where or 'value'}: NUL characters are not allowed"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where or 'value'}: not valid Unicode text"
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = storable_problem(key, f"{where}.key") or storable_problem(item, f"{where}.{key}")
            if problem:
                return problem
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problem = storable_problem(item, f"{where}[{i}]")
            if problem:
                return problem
    return None


class StorableInput(BaseModel):
    """Request bodies whose text ends up in PostgreSQL: refused with 422, never a 500 at insert time."""

    @model_validator(mode="after")
    def _storable(self) -> StorableInput:
        for name in type(self).model_fields:
            problem = storable_problem(getattr(self, name), name)
            if problem:
                raise ValueError(problem)
        return self


class MessageResponse(BaseModel):
    """A request was accepted; what happens next, in words."""

    message: str


class ErrorResponse(BaseModel):
    detail: Any = Field(description="What went wrong, in words (or a list of validation problems).")


# --- users and tokens (admin-api) ---------------------------------------------------------------


class UserCreate(StorableInput):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    name: str | None = Field(None, max_length=255)
    image_url: str | None = Field(None, max_length=2048)
    max_concurrent_bots: int | None = Field(None, ge=0, le=1000)
    data: dict[str, Any] | None = None


class UserUpdate(StorableInput):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = None
    name: str | None = Field(None, max_length=255)
    image_url: str | None = Field(None, max_length=2048)
    max_concurrent_bots: int | None = Field(None, ge=0, le=1000)
    data: dict[str, Any] | None = None


class UserResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str | None = None
    image_url: str | None = None
    max_concurrent_bots: int
    data: dict[str, Any] | None = Field(default_factory=dict)
    created_at: datetime


class TokenCreate(BaseModel):
    """POST /admin/users/{id}/tokens (optional body): what the key may do and until when."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["full", "bots", "transcripts"] = Field(
        "full",
        description="'full' (everything, upstream's only kind), 'bots' (the /bots routes) or "
        "'transcripts' (read-only meetings and transcripts).",
    )
    expires_in: int | None = Field(
        None, ge=60, le=10 * 365 * 86400, description="Seconds until the key expires (401 after)."
    )
    expires_at: AwareDatetime | None = Field(None, description="When the key expires (alternative).")

    @model_validator(mode="after")
    def _one_expiry(self) -> TokenCreate:
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        return self


class TokenResponse(BaseModel):
    """Returned once, at creation: the only time the plaintext token is visible."""

    id: int
    user_id: int
    token: str
    created_at: datetime
    scope: str = "full"
    expires_at: datetime | None = None


class TokenInfo(BaseModel):
    """A token as listed later: never the secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    token_prefix: str = Field(description="First characters of the token, to tell tokens apart.")
    created_at: datetime
    last_used_at: datetime | None = None
    revoked: bool
    scope: str = "full"
    expires_at: datetime | None = None


class UserDetailResponse(UserResponse):
    api_tokens: list[TokenInfo] = Field(default_factory=list)


class WebhookUpdate(StorableInput):
    """PUT /user/webhook: upstream's fields. Unknown fields are ignored, as upstream does."""

    model_config = ConfigDict(extra="ignore")

    webhook_url: AnyHttpUrl = Field(description="http(s) URL on a public address.")
    webhook_secret: str | None = Field(
        None,
        max_length=512,
        description="Signing secret; generated (whsec_...) and shown once when none is given or stored.",
    )
    webhook_events: dict[str, bool] | list[str] | None = Field(
        None,
        description=(
            "Which events to receive: {event: enabled} (upstream's form) or a list of names. "
            "Default: meeting.completed only. Events: meeting.completed, meeting.started, "
            "meeting.status_change, bot.failed, transcription.ready, recording.ready."
        ),
        examples=[{"meeting.completed": True, "bot.failed": True}],
    )

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        return value or None

    @field_validator("webhook_events")
    @classmethod
    def _events(cls, value: dict[str, bool] | list[str] | None) -> dict[str, bool] | None:
        if value is None:
            return None
        if len(value) > 50:
            raise ValueError("too many webhook events")
        return normalize_choice(value)


class WebhookSetResponse(UserResponse):
    """The user (upstream's answer) plus what this PUT decided."""

    webhook_secret: str | None = Field(
        None, description="The signing secret: shown here once, when it was set or generated; never again."
    )
    webhook_secret_set: bool = True
    webhook_events: list[str] = Field(description="Events this user now receives.")


class WebhookInfo(BaseModel):
    """GET /user/webhook (upstream's shape): the secret masked to its last 4 characters."""

    webhook_url: str | None = None
    webhook_secret_set: bool
    webhook_secret: str | None = None
    webhook_events: dict[str, bool] | None = None
    enabled_events: list[str] = Field(default_factory=list)


class WebhookDelivery(BaseModel):
    event_id: str
    event_type: str
    outcome: Literal["delivered", "retrying", "failed", "blocked", "dropped"]
    attempt: int
    target_host: str | None = None
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    next_attempt_at: str | None = None
    created_at: str


class WebhookDeliveries(BaseModel):
    deliveries: list[WebhookDelivery]


class WebhookTestResult(BaseModel):
    event_id: str
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: int


# --- meetings and bots (bot-manager, collector) -----------------------------------------------


class MeetingCreate(StorableInput):
    """POST /bots."""

    model_config = ConfigDict(extra="ignore")

    platform: Platform
    native_meeting_id: str = Field(min_length=1, max_length=255)
    bot_name: str | None = Field(None, min_length=1, max_length=100)
    language: str | None = Field(None, pattern=LANGUAGE_PATTERN)
    task: Task | None = None
    passcode: str | None = Field(None, max_length=128)
    meeting_url: str | None = Field(None, max_length=2048, description="Informational; the URL is rebuilt.")
    custom_vocabulary: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None,
        max_length=100,
        description=(
            "Names and terms the meeting will use (participants, products, jargon): transcription is "
            "biased towards these spellings. At most 100 entries and 900 characters in all."
        ),
        examples=[["Zyrtalix", "Siobhan", "Kubernetes"]],
    )
    recording_enabled: bool | None = Field(
        None,
        description=(
            "Record the meeting's audio (one track per participant plus the mix). "
            "Default: the user's `recording_enabled` setting, else on."
        ),
    )

    @field_validator("custom_vocabulary")
    @classmethod
    def _vocabulary_fits(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        words = [" ".join(w.split()) for w in value if w.strip()]
        if len(", ".join(words)) > MAX_VOCABULARY_CHARS:
            raise ValueError(
                f"custom_vocabulary is too long: at most {MAX_VOCABULARY_CHARS} characters in all"
            )
        return words or None

    @model_validator(mode="after")
    def _check_ids(self) -> MeetingCreate:
        problem = native_id_problem(self.platform, self.native_meeting_id) or passcode_problem(self.passcode)
        if problem:
            raise ValueError(problem)
        return self


class MeetingConfigUpdate(StorableInput):
    """PUT /bots/{platform}/{native_meeting_id}/config."""

    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(None, pattern=LANGUAGE_PATTERN)
    task: Task | None = None


class MeetingResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    platform: Platform
    native_meeting_id: str | None = None
    constructed_meeting_url: str | None = None
    status: str
    bot_container_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    data: dict[str, Any] | None = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class MeetingListResponse(BaseModel):
    meetings: list[MeetingResponse]


class BotListResponse(MeetingListResponse):
    """GET /bots (upstream's shape): the meetings plus whether another page follows."""

    has_more: bool = False


class MeetingDataUpdate(StorableInput):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=500)
    participants: list[str] | None = None
    languages: list[str] | None = None
    notes: str | None = Field(None, max_length=100_000)


class MeetingUpdate(StorableInput):
    model_config = ConfigDict(extra="forbid")

    data: MeetingDataUpdate


class BotStatus(BaseModel):
    container_id: str | None = None
    container_name: str | None = None
    platform: str | None = None
    native_meeting_id: str | None = None
    status: str | None = None
    created_at: str | None = None
    labels: dict[str, str] | None = None
    meeting_id_from_name: str | None = None
    meeting_id: int | None = None


class BotStatusResponse(BaseModel):
    running_bots: list[BotStatus]


# --- admin analytics (admin-api; upstream's shapes) -------------------------------------------


class MeetingUserStat(MeetingResponse):
    user: UserResponse


class PaginatedMeetingUserStatResponse(BaseModel):
    total: int
    items: list[MeetingUserStat]


class UserTableResponse(BaseModel):
    """A user without ``data`` or tokens."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str | None = None
    image_url: str | None = None
    created_at: datetime
    max_concurrent_bots: int


class MeetingTableResponse(BaseModel):
    """A meeting without ``data``."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    platform: str
    native_meeting_id: str | None = Field(None, validation_alias="platform_specific_id")
    status: str
    start_time: datetime | None = None
    end_time: datetime | None = None
    created_at: datetime
    updated_at: datetime


class MeetingSessionResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    meeting_id: int
    session_uid: str
    session_start_time: datetime


class TranscriptionStats(BaseModel):
    total_transcriptions: int
    total_duration: float
    unique_speakers: int
    languages_detected: list[str]


class MeetingPerformanceMetrics(BaseModel):
    join_time: float | None = None
    admission_time: float | None = None
    total_duration: float | None = None
    bot_uptime: float | None = None


class MeetingTelematicsResponse(BaseModel):
    meeting: MeetingResponse
    sessions: list[MeetingSessionResponse]
    transcription_stats: TranscriptionStats | None = None
    performance_metrics: MeetingPerformanceMetrics | None = None


class UserMeetingStats(BaseModel):
    total_meetings: int
    completed_meetings: int
    failed_meetings: int
    active_meetings: int
    total_duration: float | None = None
    average_duration: float | None = None


class UserUsagePatterns(BaseModel):
    most_used_platform: str | None = None
    meetings_per_day: float
    peak_usage_hours: list[int]
    last_activity: datetime | None = None


class UserAnalyticsResponse(BaseModel):
    """Upstream's shape, except ``api_tokens``: token metadata, never the token itself."""

    user: UserDetailResponse
    meeting_stats: UserMeetingStats
    usage_patterns: UserUsagePatterns
    api_tokens: list[TokenInfo] | None = None


# --- transcripts (collector) -------------------------------------------------------------------


SpeakerMappingStatus = Literal["MAPPED", "MULTIPLE_CONCURRENT_SPEAKERS", "NO_SPEAKER_EVENTS", "UNKNOWN"]


class TranscriptionSegment(BaseModel):
    model_config = ConfigDict(populate_by_name=True, from_attributes=True, serialize_by_alias=True)

    start_time: float = Field(alias="start")
    end_time: float = Field(alias="end")
    text: str
    language: str | None = None
    created_at: datetime | None = None
    speaker: str | None = None
    speaker_mapping_status: SpeakerMappingStatus | None = None
    absolute_start_time: datetime | None = None
    absolute_end_time: datetime | None = None
    completed: bool | None = Field(None, description="False while the segment is still being revised.")
    session_uid: str | None = None


class TranscriptionResponse(BaseModel):
    id: int
    platform: Platform
    native_meeting_id: str | None = None
    constructed_meeting_url: str | None = None
    status: str
    start_time: datetime | None = None
    end_time: datetime | None = None
    data: dict[str, Any] | None = None
    segments: list[TranscriptionSegment]
