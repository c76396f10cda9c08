"""Webhooks the collector raises when post-meeting work is done (``recording.ready``, ``transcript.ready``).

They go through the one emitter every service uses (``vexa.webhooks.emit``): it
checks the user's URL and event choice, gives the event a stable id and queues
it; the bot-manager's worker signs and delivers. Kept in this small module so the
post-processor states *what* happened and not how users are notified.
"""

from __future__ import annotations

import logging
from typing import Any

from vexa.webhooks.emit import WebhookEmitter

log = logging.getLogger(__name__)


async def send_user_webhook(
    emitter: WebhookEmitter, user_id: int, event: str, data: dict[str, Any], *, key: str
) -> str | None:
    """Queue ``event`` for the user if they asked for it; never raises (the work itself is done)."""
    try:
        return await emitter.emit(user_id, event, data, key=key)
    except Exception:
        log.warning("could not queue the %s webhook of user %s", event, user_id, exc_info=True)
        return None
