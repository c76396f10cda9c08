"""Fan-out of a meeting's status: the live event (Redis pub/sub) and the user's webhook.

Called only after the status is committed, so nobody hears of a status the
database does not have; a failure here is logged and never undoes the change.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.bot_manager.lifecycle import is_terminal
from vexa.bot_manager.webhooks import WebhookDispatcher
from vexa.db.models import Meeting, User
from vexa.events import publish_event
from vexa.meetings import meeting_response

log = logging.getLogger(__name__)


class Announcer:
    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        webhooks: WebhookDispatcher,
        base_url: str | None,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.webhooks = webhooks
        self.base_url = base_url

    async def announce(self, meeting: Meeting, reason: str | None) -> None:
        """Live event + webhook; failures here are logged, never raised into the caller."""
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
        try:
            async with self.sessionmaker() as session:
                url = (
                    await session.execute(
                        select(User.data["webhook_url"].astext).where(User.id == meeting.user_id)
                    )
                ).scalar_one_or_none()
            if url:
                event = "meeting.completed" if is_terminal(meeting.status) else "meeting.status"
                await self.webhooks.enqueue(url, event, body)
        except Exception:
            log.warning("could not queue the webhook of meeting %s", meeting.id, exc_info=True)
