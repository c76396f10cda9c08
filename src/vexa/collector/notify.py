"""Webhooks the collector raises (``recording.ready``, ``transcript.ready``).

Queued on the same Redis schedule as the bot-manager's (``WebhookDispatcher.enqueue``
only writes there; the bot-manager's runner delivers and signs). Kept in this one
small function so the webhook module's owner can re-route it in one place.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.bot_manager.webhooks import WebhookDispatcher
from vexa.db.models import User

log = logging.getLogger(__name__)


async def send_user_webhook(
    webhooks: WebhookDispatcher,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: int,
    event: str,
    payload: dict[str, Any],
) -> bool:
    """Queue ``event`` for the user's webhook URL, if they set one; never raises."""
    try:
        async with sessionmaker() as session:
            url = (
                await session.execute(select(User.data["webhook_url"].astext).where(User.id == user_id))
            ).scalar_one_or_none()
        if not url:
            return False
        await webhooks.enqueue(url, event, payload)
        return True
    except Exception:
        log.warning("could not queue the %s webhook of user %s", event, user_id, exc_info=True)
        return False
