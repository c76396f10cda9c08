"""Fixtures for the bot-manager tests: a live bot-manager with the stand-in bot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from bot_manager_helpers import make_settings

from vexa.bot_manager.app import create_app
from vexa.embedded import free_port
from vexa.testing.asgi import serve_app


@pytest_asyncio.fixture
async def start_manager(
    database_url: str, redis_url: str, tmp_path: Path, db, redis
) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with start_manager(**settings) as client``: a bot-manager on a free port."""

    @asynccontextmanager
    async def _start(orchestrator: Any = None, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        port = free_port()
        settings = make_settings(database_url, redis_url, tmp_path, BOT_MANAGER_PORT=port, **overrides)
        app = create_app(settings, orchestrator=orchestrator)
        async with serve_app(app, port) as base, httpx.AsyncClient(base_url=base, timeout=20) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client

    return _start
