"""Helpers for the collector tests: settings, message builders, a harness around the in-process app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text

from vexa.collector.app import Collector
from vexa.collector.settings import CollectorSettings
from vexa.db import Database
from vexa.streams import Segment, SessionStartMessage, TranscriptionMessage, to_fields

STREAM = "transcription_segments"
NATIVE = "abc-defg-hij"


def collector_settings(database_url: str, redis_url: str, **overrides: object) -> CollectorSettings:
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CONSUMER_NAME": "test-collector",
        "REDIS_STREAM_BLOCK_MS": 50,
        "PENDING_MSG_TIMEOUT_MS": 100,
        "BACKGROUND_TASK_INTERVAL": 0.2,
        "IMMUTABILITY_THRESHOLD": 0,
        "DB_POOL_SIZE": 3,
    }
    values.update(overrides)
    return CollectorSettings(**values)  # type: ignore[arg-type]


@dataclass
class Harness:
    app: FastAPI
    collector: Collector
    client: httpx.AsyncClient

    async def drain(self) -> int:
        """Read and handle everything queued on both streams (bounded)."""
        total, idle_rounds = 0, 0
        for _ in range(500):
            got = await self.collector.speakers.read_once(block_ms=1)
            got += await self.collector.segments.read_once(block_ms=1)
            total += got
            idle_rounds = idle_rounds + 1 if got == 0 else 0
            if idle_rounds >= 2:  # the first empty round may only have cleared the own-pending re-check
                break
        return total


async def insert_meeting(
    db: Database, user_id: int, native: str = NATIVE, status: str = "active", platform: str = "google_meet"
) -> int:
    async with db.engine.begin() as conn:
        return (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status, data) "
                    'VALUES (:u, :p, :n, :s, \'{"name": "Weekly"}\'::jsonb) RETURNING id'
                ),
                {"u": user_id, "p": platform, "n": native, "s": status},
            )
        ).scalar_one()


async def push(redis: Redis, message: object, stream: str = STREAM) -> str:
    return await redis.xadd(stream, to_fields(message))  # type: ignore[arg-type]


def transcription(
    token: str, uid: str, segments: list[Segment], native: str = NATIVE
) -> TranscriptionMessage:
    return TranscriptionMessage(
        uid=uid, platform="google_meet", meeting_id=native, token=token, segments=segments
    )


def session_start(token: str, uid: str, when: datetime, native: str = NATIVE) -> SessionStartMessage:
    return SessionStartMessage(
        uid=uid, platform="google_meet", meeting_id=native, token=token, start_timestamp=when
    )


T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)


async def count_rows(db: Database, meeting_id: int) -> int:
    async with db.engine.begin() as conn:
        return (
            await conn.execute(
                text("SELECT count(*) FROM transcriptions WHERE meeting_id = :m"), {"m": meeting_id}
            )
        ).scalar_one()
