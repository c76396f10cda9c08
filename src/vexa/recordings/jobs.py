"""The post-processing queue: one Redis stream entry per meeting to finalize and transcribe again.

The bot-manager adds an entry when a meeting with a recording ends (completed or
failed: a killed bot's chunks are finalized too); ``POST /meetings/.../transcribe``
adds one for a past meeting. The collector's post-processor consumes it.
"""

from __future__ import annotations

from redis.asyncio import Redis

POSTPROCESS_STREAM = "postprocess_jobs"
POSTPROCESS_GROUP = "postprocess_group"


async def enqueue_postprocess(redis: Redis, meeting_id: int, *, force: bool = False) -> str:
    entry = await redis.xadd(
        POSTPROCESS_STREAM, {"meeting_id": str(meeting_id), "force": "1" if force else ""}
    )
    return entry.decode() if isinstance(entry, bytes) else str(entry)
