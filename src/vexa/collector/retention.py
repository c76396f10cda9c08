"""Deletes recordings older than ``RECORDING_RETENTION_DAYS`` (files first, then their records)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vexa.collector.recordings_api import remove_recordings
from vexa.db.models import TERMINAL_STATUSES, Meeting
from vexa.recordings import records
from vexa.recordings.storage import RecordingStorage, StorageError
from vexa.tasks import raise_if_cancelled

log = logging.getLogger(__name__)


async def expire_once(
    sessionmaker: async_sessionmaker[AsyncSession], storage: RecordingStorage, days: float
) -> int:
    """One pass; returns how many recordings were deleted. ``days`` 0 keeps everything."""
    if days <= 0:
        return 0
    cutoff = datetime.now(UTC) - timedelta(days=days)
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Meeting.id, Meeting.data).where(
                    Meeting.data.has_key(records.RECORDINGS_KEY), Meeting.status.in_(TERMINAL_STATUSES)
                )
            )
        ).all()
    deleted = 0
    for meeting_id, data in rows:
        old = {
            r["id"]
            for r in data.get(records.RECORDINGS_KEY) or []
            if datetime.fromisoformat(r.get("completed_at") or r["created_at"]) < cutoff
        }
        if old:
            try:
                await remove_recordings(sessionmaker, storage, meeting_id, old)
                deleted += len(old)
            except StorageError:
                continue  # logged; retried next pass
    if deleted:
        log.info("retention: deleted %d recordings older than %g days", deleted, days)
    return deleted


async def run_retention(
    sessionmaker: async_sessionmaker[AsyncSession], storage: RecordingStorage, days: float, interval_s: float
) -> None:
    while True:
        try:
            await expire_once(sessionmaker, storage, days)
        except Exception:
            log.exception("retention pass failed")
        raise_if_cancelled()
        await asyncio.sleep(interval_s)
