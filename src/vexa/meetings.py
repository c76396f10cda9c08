"""How a meeting row is shown to users, and the native-id path check, shared by every service.

The bot-manager, the collector and webhooks all render the same ``MeetingResponse``;
keeping it here means an internal key hidden in one place is hidden everywhere.
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import HTTPException, Path, status

from vexa.db.models import Meeting
from vexa.platforms import Platform, meeting_url, native_id_problem
from vexa.schemas import MeetingResponse

CALLBACK_TOKEN_HASH_KEY = "callback_token_hash"
# Keys in meeting.data that are ours alone and never shown to users, webhooks or events.
INTERNAL_DATA_KEYS = frozenset({CALLBACK_TOKEN_HASH_KEY})


def public_data(meeting: Meeting) -> dict[str, Any]:
    return {k: v for k, v in (meeting.data or {}).items() if k not in INTERNAL_DATA_KEYS}


def meeting_response(meeting: Meeting, base_url: str | None) -> MeetingResponse:
    """The public shape; ``base_url`` is MEETING_BASE_URL, so the URL shown is the one the bot used."""
    data = public_data(meeting)
    url = None
    if meeting.platform_specific_id:
        with contextlib.suppress(ValueError):
            url = meeting_url(
                meeting.platform, meeting.platform_specific_id, data.get("passcode"), base_url=base_url
            )
    return MeetingResponse(
        id=meeting.id,
        user_id=meeting.user_id,
        platform=meeting.platform,  # type: ignore[arg-type]
        native_meeting_id=meeting.platform_specific_id,
        constructed_meeting_url=url,
        status=meeting.status,
        bot_container_id=meeting.bot_container_id,
        start_time=meeting.start_time,
        end_time=meeting.end_time,
        data=data,
        created_at=meeting.created_at,
        updated_at=meeting.updated_at,
    )


async def valid_native_id(
    platform: Platform,
    native_meeting_id: str = Path(max_length=255, description="The platform's own meeting id"),
) -> str:
    """FastAPI dependency: a malformed id is a 422 that says what the format is.

    ``async`` only so FastAPI calls it in the event loop instead of a worker thread.
    """
    problem = native_id_problem(platform, native_meeting_id)
    if problem:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"loc": ["path", "native_meeting_id"], "msg": problem, "type": "value_error"}],
        )
    return native_meeting_id
