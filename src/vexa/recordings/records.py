"""A meeting's recordings as upstream Vexa keeps them: a list in ``meetings.data["recordings"]``.

Upstream's shape (``GET /recordings``): ``{id, meeting_id, session_uid, source, status,
error_message, created_at, completed_at, media_files: [{id, type, format, storage_path,
storage_backend, file_size_bytes, duration_seconds, metadata, created_at}]}``.
Ours adds ``storage_prefix`` (where the bot writes chunks) and, per media file,
``metadata.track`` (``mixed`` or the track id) and ``metadata.participant``.
Ids are random 52-bit integers so they fit a JavaScript number and reveal nothing.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"

RECORDINGS_KEY = "recordings"


def new_id() -> int:
    return secrets.randbelow(2**52 - 1) + 1


def new_recording(meeting_id: int) -> dict[str, Any]:
    """The record the bot-manager creates when it starts a recording bot."""
    rid = new_id()
    return {
        "id": rid,
        "meeting_id": meeting_id,
        "session_uid": None,
        "source": "bot",
        "status": IN_PROGRESS,
        "error_message": None,
        "created_at": datetime.now(UTC).isoformat(),
        "completed_at": None,
        "storage_prefix": f"{meeting_id}/{rid}",
        "media_files": [],
    }


def meeting_prefix(meeting_id: int) -> str:
    """Every object of every recording of one meeting lives under this prefix."""
    return f"{meeting_id}/"
