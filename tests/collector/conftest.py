"""Fixture: the collector app in-process, API live, workers driven by the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from collector_helpers import Harness, collector_settings
from redis.asyncio import Redis

from vexa.collector.app import Collector, create_app
from vexa.db import Database


@pytest_asyncio.fixture
async def harness(database_url: str, redis_url: str, db: Database, redis: Redis) -> AsyncIterator[Harness]:
    """The collector app (API live, workers not running: the test drives them)."""
    app = create_app(collector_settings(database_url, redis_url), run_workers=False)
    async with app.router.lifespan_context(app):
        collector: Collector = app.state.collector
        await collector.segments.ensure_group()
        await collector.speakers.ensure_group()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield Harness(app, collector, client)
