"""A user's webhook settings: URL and events in ``users.data`` (as upstream keeps them), the secret apart.

The secret lives in ``webhook_secrets`` so that nothing which renders a user
(admin routes, analytics, the ``PUT`` answer's ``data``) can show it; it is
returned once, by the ``PUT`` that set or generated it, and read back only by
the code that signs deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vexa.db.models import User, WebhookSecret
from vexa.webhooks.signing import new_secret

URL_KEY = "webhook_url"
EVENTS_KEY = "webhook_events"


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str | None
    events: dict[str, bool] | None
    secret: str | None


async def load(session: AsyncSession, user_id: int) -> WebhookConfig | None:
    """The user's settings (one query), or None when the user does not exist."""
    row = (
        await session.execute(
            select(User.data, WebhookSecret.secret)
            .outerjoin(WebhookSecret, WebhookSecret.user_id == User.id)
            .where(User.id == user_id)
        )
    ).first()
    if row is None:
        return None
    data: dict[str, Any] = row[0] or {}
    events = data.get(EVENTS_KEY)
    return WebhookConfig(data.get(URL_KEY) or None, events if isinstance(events, dict) else None, row[1])


async def save(
    session: AsyncSession, user_id: int, url: str, events: dict[str, bool] | None, secret: str | None
) -> tuple[User, str | None] | None:
    """Store the settings; returns (user, the secret to show once, or None when the old one is kept).

    A given secret replaces the stored one; without one, the stored secret stays
    (changing the URL does not break verification) and a new one is generated only
    when there is none yet. ``events`` None keeps the current choice (upstream's rule).
    """
    user = (
        await session.execute(select(User).where(User.id == user_id).with_for_update())
    ).scalar_one_or_none()
    if user is None:
        return None
    data = {**(user.data or {}), URL_KEY: url}
    if events is not None:
        data[EVENTS_KEY] = events
    user.data = data
    shown: str | None = secret
    if secret is None:
        existing = await session.get(WebhookSecret, user_id)
        if existing is None:
            shown = new_secret()
    if shown is not None:
        await session.execute(
            insert(WebhookSecret)
            .values(user_id=user_id, secret=shown)
            .on_conflict_do_update(index_elements=[WebhookSecret.user_id], set_={"secret": shown})
        )
    await session.commit()
    await session.refresh(user)
    return user, shown


async def clear(session: AsyncSession, user_id: int) -> bool:
    """Remove URL, event choice and secret; False when the user does not exist."""
    user = (
        await session.execute(select(User).where(User.id == user_id).with_for_update())
    ).scalar_one_or_none()
    if user is None:
        return False
    user.data = {k: v for k, v in (user.data or {}).items() if k not in (URL_KEY, EVENTS_KEY)}
    await session.execute(delete(WebhookSecret).where(WebhookSecret.user_id == user_id))
    await session.commit()
    return True
