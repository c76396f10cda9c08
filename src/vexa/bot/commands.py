"""Commands from the bot-manager on Redis pub/sub ``bot_commands:meeting:{meeting_id}``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger("vexa.bot.commands")


def channel_for(meeting_id: int | str) -> str:
    return f"bot_commands:meeting:{meeting_id}"


async def listen_for_commands(
    redis_url: str,
    meeting_id: int | str,
    handle: Callable[[dict[str, Any]], Awaitable[None]],
    subscribed: asyncio.Event | None = None,
) -> None:
    """Subscribe and call ``handle`` per JSON command until cancelled; reconnects on errors."""
    backoff = 0.5
    while True:
        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel_for(meeting_id))
                log.info("listening for commands on %s", channel_for(meeting_id))
                if subscribed is not None:
                    subscribed.set()
                backoff = 0.5
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        command = json.loads(message["data"])
                    except (TypeError, ValueError):
                        log.warning("ignoring a command that is not JSON")
                        continue
                    if isinstance(command, dict):
                        await handle(command)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis restarts must not kill the bot
            log.warning("command channel lost (%s); retrying in %.1fs", type(exc).__name__, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()
