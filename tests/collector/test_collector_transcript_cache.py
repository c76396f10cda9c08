"""The encoded-transcript cache: reused while unchanged, never stale after any kind of write.

Real PostgreSQL and Redis; segments go through the real consumer and persister. Each
write below comes from a different writer (the persister's upsert, a live draft, a
direct UPDATE/DELETE as another service would do, a status change, the redaction by
DELETE /meetings), and the very next GET must show it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from collector_helpers import insert_meeting, push, session_start, transcription
from prometheus_client import REGISTRY
from sqlalchemy import text

from vexa.collector.segments import segments_key
from vexa.schemas import TranscriptionResponse
from vexa.streams import Segment

URL = "/transcripts/google_meet/abc-defg-hij"


async def _persist(harness, meeting_id: int) -> None:
    await harness.drain()
    await harness.collector.persister.persist_meeting(meeting_id, force=True)


async def _sql(db, statement: str, **params) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(statement), params)


async def test_cached_transcript_follows_every_write(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id, status="active")
    headers = {"X-API-Key": token}
    cache = harness.app.state.transcript_cache
    await push(redis, session_start(token, "s1", datetime(2026, 11, 28, 9, 0, tzinfo=UTC)))
    await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text="The first words.")]))
    await push(redis, transcription(token, "s1", [Segment(start=3, end=4, text="The second words.")]))
    await _persist(harness, meeting_id)
    assert await redis.hlen(segments_key(meeting_id)) == 0

    async def texts() -> list[str]:
        resp = await harness.client.get(URL, headers=headers)
        assert resp.status_code == 200, resp.text
        return [s["text"] for s in resp.json()["segments"]]

    first = await harness.client.get(URL, headers=headers)
    hits = cache.hits
    second = await harness.client.get(URL, headers=headers)
    assert cache.hits == hits + 1, "an unchanged transcript is served from the cache"
    assert second.content == first.content and second.headers["content-type"] == "application/json"
    # Same fields and types as the model FastAPI rendered before (aliases: "start"/"end" in, names out).
    parsed = TranscriptionResponse.model_validate_json(second.content)
    assert parsed.model_dump_json(by_alias=True).encode() == second.content
    assert [s["text"] for s in second.json()["segments"]] == ["The first words.", "The second words."]
    assert second.json()["segments"][0]["absolute_start_time"] == "2026-11-28T09:00:01Z"

    # A corrected segment, first as a live draft (Redis), then persisted (the persister's upsert).
    await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text="The first words, fixed.")]))
    await harness.drain()
    assert await texts() == ["The first words, fixed.", "The second words."]
    await _persist(harness, meeting_id)
    assert await redis.hlen(segments_key(meeting_id)) == 0
    assert await texts() == ["The first words, fixed.", "The second words."]
    assert await texts() == ["The first words, fixed.", "The second words."]  # cached again, same text

    # Another writer's UPDATE (speaker mapping, post-processing) and DELETE of a row.
    await _sql(
        db,
        "UPDATE transcriptions SET text = 'Rewritten.' WHERE meeting_id = :m AND start_time = 3",
        m=meeting_id,
    )
    assert await texts() == ["The first words, fixed.", "Rewritten."]
    await _sql(db, "DELETE FROM transcriptions WHERE meeting_id = :m AND start_time = 1", m=meeting_id)
    assert await texts() == ["Rewritten."]
    # The same count again (a delete and an insert in one transaction) must not look unchanged.
    await texts()
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM transcriptions WHERE meeting_id = :m"), {"m": meeting_id})
        await conn.execute(
            text(
                "INSERT INTO transcriptions (meeting_id, start_time, end_time, text, session_uid) "
                "VALUES (:m, 3, 4, 'Replaced in one go.', 's1')"
            ),
            {"m": meeting_id},
        )
    assert await texts() == ["Replaced in one go."]

    # The meeting row itself (the bot-manager's status change) and its sessions.
    await _sql(db, "UPDATE meetings SET status = 'completed' WHERE id = :m", m=meeting_id)
    assert (await harness.client.get(URL, headers=headers)).json()["status"] == "completed"
    await _sql(
        db,
        "UPDATE meeting_sessions SET session_start_time = '2026-11-28T10:00:00Z' WHERE meeting_id = :m",
        m=meeting_id,
    )
    moved = (await harness.client.get(URL, headers=headers)).json()["segments"][0]
    assert moved["absolute_start_time"] == "2026-11-28T10:00:03Z"

    # Redaction: DELETE /meetings removes the text; nothing cached may bring it back.
    by_id = {"meeting_id": meeting_id}
    assert (await harness.client.get(URL, params=by_id, headers=headers)).status_code == 200
    assert (
        await harness.client.delete("/meetings/google_meet/abc-defg-hij", headers=headers)
    ).status_code == 200
    assert (await harness.client.get(URL, headers=headers)).status_code == 404
    assert (await harness.client.get(URL, params=by_id, headers=headers)).status_code == 404


async def test_cached_transcript_is_only_the_callers(harness, db, redis, make_user):
    alice_id, alice = await make_user()
    _, bob = await make_user()
    meeting_id = await insert_meeting(db, alice_id, status="active")
    await push(redis, transcription(alice, "s1", [Segment(start=1, end=2, text="Only for Alice.")]))
    await _persist(harness, meeting_id)
    for _ in range(2):  # the second answer comes from the cache
        assert (await harness.client.get(URL, headers={"X-API-Key": alice})).status_code == 200
    assert harness.app.state.transcript_cache.hits >= 1
    for params in ({}, {"meeting_id": meeting_id}):
        resp = await harness.client.get(URL, params=params, headers={"X-API-Key": bob})
        assert resp.status_code == 404


def _answered(route: str) -> float:
    return REGISTRY.get_sample_value("vexa_hot_route_requests_total", {"route": route}) or 0.0


async def test_hot_routes_answer_like_the_declared_ones(harness, db, redis, make_user):
    """Once a key is cached, plain GETs skip FastAPI's router; same bytes, and FastAPI keeps the rest."""
    user_id, token = await make_user()
    _, reader = await make_user()
    meeting_id = await insert_meeting(db, user_id, status="active")
    await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text="Hot or not.")]))
    await _persist(harness, meeting_id)
    headers = {"X-API-Key": token}

    # (The key is cached already: the consumer verified it for the segment.) A neutral query
    # parameter sends the request through FastAPI's declared route; without one it goes the short way.
    for path, neutral in (("/meetings", {"status": ""}), (URL, {"format": "json"})):
        route = path.split("/google_meet")[0]
        before = _answered(route)
        full = await harness.client.get(path, params=neutral, headers=headers)
        assert _answered(route) == before
        hot = await harness.client.get(path, headers=headers)
        assert _answered(route) == before + 1
        assert hot.status_code == full.status_code == 200
        assert hot.content == full.content and hot.headers["content-type"] == full.headers["content-type"]
    # A query string, a bad id, a missing meeting: FastAPI answers, as before.
    paged = await harness.client.get("/meetings", params={"limit": 1}, headers=headers)
    assert paged.headers["X-Total-Count"] == "1" and len(paged.json()["meetings"]) == 1
    bad = await harness.client.get("/transcripts/google_meet/ABC", headers=headers)
    assert bad.status_code == 422 and "3-4-3" in bad.json()["detail"][0]["msg"]
    missing = await harness.client.get("/transcripts/google_meet/zzz-zzzz-zzz", headers=headers)
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    # A key outside its scope stays refused even once cached.
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE api_tokens SET scope = 'bots' WHERE user_id = (SELECT id FROM users "
                "WHERE id = (SELECT user_id FROM api_tokens WHERE token_prefix = :p LIMIT 1))"
            ),
            {"p": reader[:6]},
        )
    for _ in range(2):
        refused = await harness.client.get("/meetings", headers={"X-API-Key": reader})
        assert refused.status_code == 403 and "scope 'bots'" in refused.json()["detail"]
