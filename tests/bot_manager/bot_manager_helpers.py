"""Helpers for the bot-manager tests: run the app under uvicorn in this event loop, poll the DB."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select

from vexa.bot_manager.settings import BotManagerSettings
from vexa.db import Database
from vexa.db.models import Meeting

T = TypeVar("T")


def standin_command(mode: str = "lifecycle") -> list[str]:
    """BOT_COMMAND running the stand-in bot (a test double for the browser bot)."""
    return [sys.executable, "-m", "vexa.testing.standin_bot", mode]


def default_bot_command_for_tests() -> list[str]:
    """The REAL bot (Chromium), run by this interpreter."""
    return [sys.executable, "-m", "vexa", "bot"]


def make_settings(database_url: str, redis_url: str, tmp: Path, **overrides: Any) -> BotManagerSettings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "BOT_COMMAND": standin_command("lifecycle"),
        "BOT_LOG_DIR": tmp / "bot-logs",
        "MEETING_BASE_URL": "http://127.0.0.1:8099",
        "RECONCILE_INTERVAL_S": 0.5,
        "BOT_STOP_TIMEOUT_S": 5.0,
        "WEBHOOK_RETRY_BASE_S": 0.2,
        "WEBHOOK_ALLOW_PRIVATE_URLS": True,  # the receiver stand-ins listen on 127.0.0.1
    }
    values.update(overrides)
    return BotManagerSettings(**values)


async def wait_for(check: Callable[[], Awaitable[T | None]], limit_s: float = 15.0, what: str = "") -> T:
    """Poll ``check`` (bounded) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + limit_s
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}; last={last!r}")


async def get_meeting(db: Database, meeting_id: int) -> Meeting:
    async with db.sessionmaker() as session:
        meeting = (
            await session.execute(
                select(Meeting).where(Meeting.id == meeting_id).execution_options(populate_existing=True)
            )
        ).scalar_one()
        return meeting


async def wait_status(db: Database, meeting_id: int, status: str, limit_s: float = 15.0) -> Meeting:
    async def check() -> Meeting | None:
        meeting = await get_meeting(db, meeting_id)
        return meeting if meeting.status == status else None

    return await wait_for(check, limit_s, f"meeting {meeting_id} to be {status}")
