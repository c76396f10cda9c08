"""Segments are authorised by the bot's meeting token; dead letters are capped and hold no token.

The collector in-process with its real workers' code, real Redis and PostgreSQL; bot tokens
are registered the way the bot-manager registers them.
"""

from __future__ import annotations

import json

import pytest_asyncio
from collector_helpers import STREAM, Harness, collector_settings, insert_meeting, push, transcription
from sqlalchemy import text

from vexa import bot_tokens
from vexa.collector.app import Collector, create_app
from vexa.collector.segments import segments_key
from vexa.streams import Segment

DEAD = STREAM + ":dead"


async def _bot_token(redis, meeting_id: int, user_id: int, native: str) -> str:
    token, digest = bot_tokens.new_bot_token()
    claims = bot_tokens.BotTokenClaims(meeting_id, user_id, "google_meet", native, digest)
    await bot_tokens.register(redis, claims, ttl_s=600)
    return token


async def test_a_bot_token_writes_to_its_meeting_only_and_outlives_the_owners_key(
    harness, db, redis, make_user
):
    user_id, api_key = await make_user()
    mine = await insert_meeting(db, user_id, native="abc-defg-hij")
    other = await insert_meeting(db, user_id, native="xyz-wxyz-xyz")
    token = await _bot_token(redis, mine, user_id, "abc-defg-hij")

    ok = await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text="For my meeting.")]))
    wrong_native = await push(
        redis, transcription(token, "s2", [Segment(start=1, end=2, text="Elsewhere.")], native="xyz-wxyz-xyz")
    )
    wrong_id = await push(
        redis,
        transcription(token, "s3", [Segment(start=1, end=2, text="Elsewhere too.")]).model_copy(
            update={"meeting_db_id": other}
        ),
    )
    unknown = await push(
        redis, transcription("vbt_" + "y" * 43, "s4", [Segment(start=1, end=2, text="Forged.")])
    )
    await harness.drain()
    dead = {f["original_id"]: f["reason"] for _, f in await redis.xrange(DEAD)}
    assert ok not in dead
    assert "not for google_meet/xyz-wxyz-xyz" in dead[wrong_native]
    assert "not for" in dead[wrong_id] and "unknown or expired bot token" in dead[unknown]
    assert await redis.hlen(segments_key(mine)) == 1 and await redis.hlen(segments_key(other)) == 0

    # The owner revokes their API key: the running bot's token is separate and keeps working.
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE api_tokens SET revoked = true WHERE user_id = :u"), {"u": user_id})
    harness.collector.verifier.forget()
    await push(redis, transcription(token, "s1", [Segment(start=3, end=4, text="Still transcribing.")]))
    await push(redis, transcription(api_key, "s9", [Segment(start=5, end=6, text="Old key.")]))
    await harness.drain()
    live = [json.loads(v)["text"] for v in (await redis.hgetall(segments_key(mine))).values()]
    assert sorted(live) == ["For my meeting.", "Still transcribing."]
    reasons = [f["reason"] for _, f in await redis.xrange(DEAD)]
    assert reasons[-1].startswith("unauthorized: unknown, revoked or expired token")

    # An ended meeting's token still lands what was sent before the end (the collector's backlog).
    await bot_tokens.mark_ended(redis, bot_tokens.hash_bot_token(token), grace_s=60)
    await push(redis, transcription(token, "s1", [Segment(start=7, end=8, text="Sent before the end.")]))
    await harness.drain()
    assert await redis.hlen(segments_key(mine)) == 3


@pytest_asyncio.fixture
async def small_dead_letters(database_url, redis_url, db, redis):
    app = create_app(collector_settings(database_url, redis_url, DEAD_LETTER_MAXLEN=100), run_workers=False)
    async with app.router.lifespan_context(app):
        collector: Collector = app.state.collector
        await collector.segments.ensure_group()
        await collector.speakers.ensure_group()
        yield Harness(app, collector, None)  # type: ignore[arg-type]


async def test_dead_letters_are_capped_and_hold_no_token(small_dead_letters, db, redis, make_user):
    user_id, api_key = await make_user()
    meeting = await insert_meeting(db, user_id)
    bot_token = await _bot_token(redis, meeting, user_id, "abc-defg-hij")
    unknown_meeting = transcription(
        bot_token, "s1", [Segment(start=1, end=2, text="x")], native="nop-nope-nop"
    )
    bad_shape = json.dumps({"type": "transcription", "uid": "s1", "token": api_key, "segments": "no"})
    pipe = redis.pipeline(transaction=False)
    for i in range(400):
        if i % 3 == 0:
            pipe.xadd(STREAM, {"payload": unknown_meeting.model_dump_json()})
        elif i % 3 == 1:
            pipe.xadd(STREAM, {"payload": bad_shape})
        else:  # not even JSON, but it still holds a key
            pipe.xadd(STREAM, {"payload": f'{{"token": "{api_key}", broken'})
    pipe.xadd(STREAM, {"data": json.dumps({"token": api_key})})  # no payload field at all
    await pipe.execute()
    await small_dead_letters.drain()

    length = await redis.xlen(DEAD)
    assert 100 <= length < 200, length  # MAXLEN ~ 100: trimmed in whole nodes, never unbounded
    assert (await redis.xpending(STREAM, "collector_group"))["pending"] == 0
    entries = await redis.xrange(DEAD)
    for _, fields in entries:
        for value in fields.values():
            assert api_key not in value and bot_token not in value
    assert any('"token":"[redacted]"' in f["payload"] for _, f in entries)
    assert json.loads(json.loads(entries[-1][1]["payload"])["data"]) == {"token": "[redacted]"}
