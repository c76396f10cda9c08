"""The relational model every service shares.

Table and column names follow upstream Vexa so that its SQL, dashboards and
clients keep working; tokens are the one deliberate difference (stored hashed).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import (
    text as sql,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class MeetingStatus(enum.StrEnum):
    """Lifecycle of a bot in a meeting; the bot-manager owns the transitions."""

    requested = "requested"
    joining = "joining"
    awaiting_admission = "awaiting_admission"
    active = "active"
    stopping = "stopping"
    completed = "completed"
    failed = "failed"


ACTIVE_STATUSES: tuple[str, ...] = (
    MeetingStatus.requested,
    MeetingStatus.joining,
    MeetingStatus.awaiting_admission,
    MeetingStatus.active,
    MeetingStatus.stopping,
)
TERMINAL_STATUSES: tuple[str, ...] = (MeetingStatus.completed, MeetingStatus.failed)

_ACTIVE_SQL = "status IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE_STATUSES))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    name: Mapped[str | None] = mapped_column(String(255))
    image_url: Mapped[str | None] = mapped_column(Text)
    max_concurrent_bots: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql("1"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=sql("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    tokens: Mapped[list[APIToken]] = relationship(back_populates="user", cascade="all, delete-orphan")

    # Unique regardless of case, so a lookup by email never finds two users.
    __table_args__ = (Index("uq_users_email_lower", func.lower(email), unique=True),)


class APIToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # First characters of the plaintext, so a user can tell tokens apart without the secret.
    token_prefix: Mapped[str] = mapped_column(String(16), nullable=False, server_default=sql("''"))
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sql("false"))
    # What the key may do (vexa.auth.Scope): 'full' (upstream's only kind), 'bots', 'transcripts'.
    scope: Mapped[str] = mapped_column(String(16), nullable=False, server_default=sql("'full'"))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="tokens")


class WebhookSecret(Base):
    """A user's webhook signing secret, kept out of ``users.data`` so no user view can show it."""

    __tablename__ = "webhook_secrets"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(512), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Meeting(Base):
    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    platform: Mapped[str] = mapped_column(String(100), nullable=False)
    platform_specific_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(50), nullable=False, server_default=sql("'requested'"))
    bot_container_id: Mapped[str | None] = mapped_column(String(255))
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=sql("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        Index("ix_meetings_user_created", "user_id", "created_at"),
        Index("ix_meetings_platform_native", "platform", "platform_specific_id"),
        Index("ix_meetings_status", "status"),
        # One active bot per user + platform + native id; enforced by the database so
        # that concurrent POST /bots requests cannot both win.
        Index(
            "uq_meetings_one_active",
            "user_id",
            "platform",
            "platform_specific_id",
            unique=True,
            postgresql_where=sql(_ACTIVE_SQL),
        ),
    )


class Transcription(Base):
    __tablename__ = "transcriptions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False)
    start_time: Mapped[float] = mapped_column(Float, nullable=False)
    end_time: Mapped[float] = mapped_column(Float, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    speaker: Mapped[str | None] = mapped_column(String(255))
    speaker_mapping_status: Mapped[str | None] = mapped_column(String(50))
    speaker_confidence: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Empty string rather than NULL so the idempotency key below is a plain unique constraint.
    session_uid: Mapped[str] = mapped_column(String(255), nullable=False, server_default=sql("''"))
    # Producer-assigned order of this segment's drafts (vexa.streams.entry_version): an upsert
    # only replaces a row with a higher version, so a replayed older draft never wins.
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=sql("0"))
    # A piece of a completed mixed-stream segment split at speaker changes: that segment's
    # start. A later revision of the segment replaces all of its pieces (collector/rows.py).
    split_from: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("meeting_id", "session_uid", "start_time", name="uq_transcriptions_segment"),
        Index("ix_transcriptions_meeting_start", "meeting_id", "start_time"),
    )


class MeetingSession(Base):
    __tablename__ = "meeting_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False)
    session_uid: Mapped[str] = mapped_column(String(255), nullable=False)
    session_start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        UniqueConstraint("meeting_id", "session_uid", name="uq_meeting_sessions_uid"),
        # The collector finds a session's meeting by its uid alone (a backlog's messages may not
        # name the meeting): without this, every lookup scanned all sessions ever recorded.
        Index("ix_meeting_sessions_session_uid", "session_uid"),
    )


class FinalSegment(Base):
    """The post-meeting transcript: decoded again from the recording, one participant's track at a time.

    Kept apart from ``transcriptions`` (the live rows) so neither ever overwrites the
    other; ``GET /transcripts`` serves these once ``data.final_transcript.status`` is
    ``completed`` and the live ones with ``?source=live``. Times count from the
    recording's first sample.
    """

    __tablename__ = "final_segments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False)
    start_time: Mapped[float] = mapped_column(Float, nullable=False)
    end_time: Mapped[float] = mapped_column(Float, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    speaker: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_final_segments_meeting_start", "meeting_id", "start_time"),)
