"""Prometheus metrics of the bot-manager (``GET /metrics`` on its port).

Bots by status is read from PostgreSQL at scrape time, so every replica reports the same truth
(the meetings table is where a bot's status lives, whichever replica started it).
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from prometheus_client import Gauge
from sqlalchemy import func, select

from vexa.db import ACTIVE_STATUSES
from vexa.db.models import Meeting

BOTS = Gauge("vexa_bots", "Meetings whose bot is live, by status (all replicas together).", ["status"])

DB_TIMEOUT_S = 2.0


async def refresh(request: Request) -> None:
    """Count live bots by status in one indexed query."""
    async with request.app.state.db.session() as session:
        rows = await asyncio.wait_for(
            session.execute(
                select(Meeting.status, func.count())
                .where(Meeting.status.in_(ACTIVE_STATUSES))
                .group_by(Meeting.status)
            ),
            DB_TIMEOUT_S,
        )
    counts = dict(rows.all())
    for status in ACTIVE_STATUSES:
        BOTS.labels(status).set(counts.get(status, 0))
