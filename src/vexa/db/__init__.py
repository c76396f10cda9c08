"""Shared relational model, engine factory and migrations."""

from vexa.db.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    APIToken,
    Base,
    Meeting,
    MeetingSession,
    MeetingStatus,
    Transcription,
    User,
)
from vexa.db.session import Database

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "APIToken",
    "Base",
    "Database",
    "Meeting",
    "MeetingSession",
    "MeetingStatus",
    "Transcription",
    "User",
]
