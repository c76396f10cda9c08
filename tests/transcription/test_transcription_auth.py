"""Who may take a transcription slot: bots with their meeting's token; anonymous clients only opt-in.

The real service (child process, tiny.en) and real Redis; tokens are registered with the same
function the bot-manager uses when it starts a bot.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from conftest import Service, open_session, silence, start_service
from vexa import bot_tokens
from vexa.streams import SessionStartMessage, parse_payload

pytestmark = [pytest.mark.slow, pytest.mark.model]

GMEET = "abc-defg-hij"


@pytest.fixture(scope="module")
def guarded(redis_url: str, tmp_session_dir: Path) -> Iterator[Service]:
    """The service as deployed by default: no WL_STANDALONE, one slot."""
    svc = start_service(redis_url, tmp_session_dir, "guarded", WL_STANDALONE="false", WL_MAX_CLIENTS="1")
    try:
        yield svc
    finally:
        svc.proc.stop()


async def _issue(redis: Redis, meeting_id: int, native: str = GMEET) -> str:
    token, digest = bot_tokens.new_bot_token()
    claims = bot_tokens.BotTokenClaims(meeting_id, 5, "google_meet", native, digest)
    await bot_tokens.register(redis, claims, ttl_s=600)
    return token


def _config(token: str | None, native: str = GMEET, **extra: object) -> dict[str, object]:
    config: dict[str, object] = {"uid": str(uuid.uuid4()), "language": "en", "platform": "google_meet"}
    config.update({"meeting_id": native, **extra})
    if token is not None:
        config["token"] = token
    return config


async def _refused(service: Service, config: dict[str, object]) -> str:
    ws, first = await open_session(service.ws_url, config)
    await ws.close()
    assert first["status"] == "ERROR", first
    return first["message"]


async def test_only_a_bot_with_its_meetings_token_gets_a_slot(guarded: Service, redis: Redis) -> None:
    token = await _issue(redis, meeting_id=41)
    # Anonymous WhisperLive clients, however many, never hold the one slot.
    for _ in range(3):
        message = await _refused(guarded, {"uid": str(uuid.uuid4()), "language": "en"})
        assert "meeting token" in message
    assert "meeting token" in await _refused(guarded, _config("user-api-key-0123456789"))
    assert "unknown" in await _refused(guarded, _config("vbt_" + "x" * 43))
    assert "another meeting" in await _refused(guarded, _config(token, native="xyz-wxyz-xyz"))
    assert "another meeting" in await _refused(guarded, _config(token, meeting_db_id=42))
    code, health = guarded.health()
    assert code == 200 and health["active_sessions"] == 0 and health["available"] == 1

    config = _config(token)
    ws, first = await open_session(guarded.ws_url, config)
    assert first["message"] == "SERVER_READY"
    await ws.send(silence(0.5).astype("<f4").tobytes())
    await ws.send(b"END_OF_AUDIO")
    await asyncio.wait_for(ws.wait_closed(), 30)
    # What it published names the meeting the token is for, so the collector can bind it.
    starts = []
    for _ in range(50):
        entries = [parse_payload(f["payload"]) for _, f in await redis.xrange("transcription_segments")]
        starts = [e for e in entries if e.uid == config["uid"] and isinstance(e, SessionStartMessage)]
        if starts:
            break
        await asyncio.sleep(0.1)
    assert starts and starts[0].meeting_db_id == 41 and starts[0].token == token

    # Once the meeting ends its token opens nothing new.
    await bot_tokens.mark_ended(redis, bot_tokens.hash_bot_token(token), grace_s=60)
    assert "ended" in await _refused(guarded, _config(token))


async def test_standalone_mode_serves_anonymous_whisperlive_clients(service: Service) -> None:
    ws, first = await open_session(service.ws_url, {"uid": str(uuid.uuid4()), "language": "en"})
    await ws.close()
    assert first["message"] == "SERVER_READY"
