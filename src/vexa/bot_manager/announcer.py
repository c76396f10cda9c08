"""Fan-out of a meeting's status: the live event (Redis pub/sub) and the user's webhooks.

Called only after the status is committed, so nobody hears of a status the
database does not have; a failure here is logged and never undoes the change.

Webhook events per change (upstream's vocabulary; see ``vexa.webhooks.events``):
every change is a ``meeting.status_change``; ``active`` is also
``meeting.started``; ``completed`` and ``failed`` are ``meeting.completed`` (the
one event users get by default: the meeting is over) and ``failed`` is also
``bot.failed``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from vexa.bot_manager.lifecycle import is_terminal
from vexa.db.models import Meeting, MeetingStatus
from vexa.events import publish_event
from vexa.meetings import meeting_response
from vexa.webhooks.emit import WebhookEmitter
from vexa.webhooks.events import BOT_FAILED, MEETING_COMPLETED, MEETING_STARTED, MEETING_STATUS_CHANGE

log = logging.getLogger(__name__)


def webhook_meeting(body: dict[str, Any]) -> dict[str, Any]:
    """The meeting as webhooks show it: upstream hoists the reason and failure stage to the top."""
    data = body.get("data") or {}
    stage = None
    if body.get("status") == MeetingStatus.failed:
        steps = data.get("status_transition") or []
        stage = steps[-1].get("from") if steps else None
    return {**body, "completion_reason": data.get("completion_reason"), "failure_stage": stage}


class Announcer:
    def __init__(self, redis: Redis, emitter: WebhookEmitter, base_url: str | None) -> None:
        self.redis = redis
        self.emitter = emitter
        self.base_url = base_url

    async def announce(
        self, meeting: Meeting, reason: str | None, *, old: str | None = None, source: str = "api"
    ) -> None:
        """Live event + webhooks; failures here are logged, never raised into the caller."""
        body = meeting_response(meeting, self.base_url).model_dump(mode="json")
        try:
            await publish_event(
                self.redis,
                "meeting.status",
                meeting.id,
                meeting.platform,
                meeting.platform_specific_id,
                {"status": meeting.status, "reason": reason, "meeting": body},
            )
        except RedisError:
            log.warning("could not publish status event of meeting %s", meeting.id)
        shown = webhook_meeting(body)
        change = {
            "from": old,
            "to": meeting.status,
            "reason": reason,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "transition_source": source,
        }
        events: list[tuple[str, dict[str, Any]]] = [
            (MEETING_STATUS_CHANGE, {"meeting": shown, "status_change": change})
        ]
        if meeting.status == MeetingStatus.active:
            events.append((MEETING_STARTED, {"meeting": shown, "status_change": change}))
        if is_terminal(meeting.status):
            events.append((MEETING_COMPLETED, {"meeting": shown}))
        if meeting.status == MeetingStatus.failed:
            events.append((BOT_FAILED, {"meeting": shown, "status_change": change}))
        try:
            await self.emitter.emit_all(meeting.user_id, events, key=f"meeting:{meeting.id}:{meeting.status}")
        except Exception:
            log.warning("could not queue the webhooks of meeting %s", meeting.id, exc_info=True)
