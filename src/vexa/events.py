"""Live-event channels: the collector and bot-manager publish, the gateway fans out.

One Redis pub/sub channel per meeting (by database id) carries every event a
WebSocket subscriber may see, each a JSON object::

    {"type": "transcript.mutable" | "transcript.finalized" | "meeting.status",
     "meeting": {"id": 12, "platform": "google_meet", "native_id": "abc-defg-hij"},
     "payload": {...}}

``transcript.*`` payloads are ``{"segments": [TranscriptionSegment JSON, ...]}``;
``meeting.status`` payloads are ``{"status": ..., "reason": ... | None, ...}``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from redis.asyncio import Redis

EventType = Literal["transcript.mutable", "transcript.finalized", "meeting.status"]


def meeting_channel(meeting_id: int) -> str:
    return f"meeting:{meeting_id}:events"


def build_event(
    event_type: EventType, meeting_id: int, platform: str, native_id: str | None, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": event_type,
        "meeting": {"id": meeting_id, "platform": platform, "native_id": native_id},
        "payload": payload,
    }


async def publish_event(
    redis: Redis,
    event_type: EventType,
    meeting_id: int,
    platform: str,
    native_id: str | None,
    payload: dict[str, Any],
) -> int:
    """Returns the number of subscribers that received it (0 is normal: nobody listening)."""
    event = build_event(event_type, meeting_id, platform, native_id, payload)
    return await redis.publish(meeting_channel(meeting_id), json.dumps(event, default=str))
