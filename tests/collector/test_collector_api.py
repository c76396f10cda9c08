"""The collector's HTTP API: isolation between users, PATCH/DELETE of meetings, health, filter config."""

from __future__ import annotations

import httpx
import pytest
from collector_helpers import collector_settings, count_rows, insert_meeting, push, transcription
from sqlalchemy import text

from vexa.collector.app import create_app
from vexa.collector.filters import TranscriptionFilter
from vexa.collector.segments import segments_key
from vexa.streams import Segment


async def test_other_users_meetings_are_invisible(harness, db, redis, make_user):
    alice_id, alice = await make_user()
    _, bob = await make_user()
    older = await insert_meeting(db, alice_id, status="completed")
    newer = await insert_meeting(db, alice_id, status="active")
    await insert_meeting(db, alice_id, native="123456789", platform="zoom")
    await push(redis, transcription(alice, "s1", [Segment(start=1, end=2, text="Private words of Alice.")]))
    await harness.drain()

    resp = await harness.client.get("/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": bob})
    assert resp.status_code == 404 and "not found" in resp.json()["detail"]
    mine = await harness.client.get("/meetings", headers={"X-API-Key": bob})
    assert mine.status_code == 200 and mine.json() == {"meetings": []}

    listed = (await harness.client.get("/meetings", headers={"X-API-Key": alice})).json()["meetings"]
    assert [m["native_meeting_id"] for m in listed] == ["123456789", "abc-defg-hij", "abc-defg-hij"]
    assert listed[1]["constructed_meeting_url"] == "https://meet.google.com/abc-defg-hij"

    latest = await harness.client.get("/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": alice})
    assert latest.json()["id"] == newer and len(latest.json()["segments"]) == 1  # latest meeting by default
    chosen = await harness.client.get(
        "/transcripts/google_meet/abc-defg-hij", params={"meeting_id": older}, headers={"X-API-Key": alice}
    )
    assert chosen.json()["id"] == older and chosen.json()["segments"] == []

    assert (await harness.client.get("/meetings")).status_code == 401
    assert (await harness.client.get("/meetings", headers={"X-API-Key": "nope"})).status_code == 403
    bad = await harness.client.get("/transcripts/google_meet/ABC", headers={"X-API-Key": alice})
    assert bad.status_code == 422 and "3-4-3" in bad.json()["detail"][0]["msg"]
    assert (
        await harness.client.get("/transcripts/skype/abc", headers={"X-API-Key": alice})
    ).status_code == 422


async def test_patch_and_delete_meeting(harness, db, redis, make_user):
    user_id, token = await make_user()
    _, other = await make_user()
    meeting_id = await insert_meeting(db, user_id, status="active")
    headers = {"X-API-Key": token}
    url = "/meetings/google_meet/abc-defg-hij"

    resp = await harness.client.patch(
        url, json={"data": {"notes": "Budget", "languages": ["en"]}}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == {"name": "Weekly", "notes": "Budget", "languages": ["en"]}
    assert (await harness.client.patch(url, json={"data": {"bogus": 1}}, headers=headers)).status_code == 422
    assert (
        await harness.client.patch(url, json={"data": {}}, headers={"X-API-Key": other})
    ).status_code == 404

    await push(
        redis, transcription(token, "s1", [Segment(start=1, end=2, text="Words that will be deleted.")])
    )
    await push(redis, transcription(token, "s1", [Segment(start=3, end=4, text="More words to be deleted.")]))
    await harness.drain()
    await harness.collector.persister.persist_meeting(meeting_id, force=True)
    await push(redis, transcription(token, "s1", [Segment(start=5, end=6, text="A live draft too.")]))
    await harness.drain()
    assert await count_rows(db, meeting_id) == 2 and await redis.hlen(segments_key(meeting_id)) == 1

    busy = await harness.client.delete(url, headers=headers)
    assert busy.status_code == 409 and "active" in busy.json()["detail"]
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE meetings SET status = 'completed' WHERE id = :m"), {"m": meeting_id})
    assert (await harness.client.delete(url, headers={"X-API-Key": other})).status_code == 404
    done = await harness.client.delete(url, headers=headers)
    assert done.status_code == 200 and "deleted" in done.json()["message"]

    assert await count_rows(db, meeting_id) == 0
    assert not await redis.exists(segments_key(meeting_id))
    async with db.engine.begin() as conn:
        row = (
            await conn.execute(
                text("SELECT platform_specific_id, data FROM meetings WHERE id = :m"), {"m": meeting_id}
            )
        ).one()
    assert row == (None, {"redacted": True})
    assert (
        await harness.client.get("/transcripts/google_meet/abc-defg-hij", headers=headers)
    ).status_code == 404


async def test_health(harness):
    resp = await harness.client.get("/health")
    assert resp.status_code == 200
    empty = {"length": 0, "lag": 0, "pending": 0, "trimmed": 0}
    assert resp.json() == {
        "status": "ok",
        "service": "transcription-collector",
        "redis": "ok",
        "database": "ok",
        "streams": {"transcription_segments": empty, "speaker_events_relative": empty},
    }


def test_filter_defaults():
    f = TranscriptionFilter()
    assert not f.keep("[Music]")[0]
    assert not f.keep("♪ ♪")[0]
    assert not f.keep("Subtitles by the Amara.org community")[0]
    assert not f.keep("uh")[0]
    assert f.keep("Let's review the numbers.") == (True, "")
    assert f.keep("No.")[0]


async def test_user_filter_config(tmp_path, database_url, redis_url, db, redis, make_user):
    config = tmp_path / "filter_config.py"
    config.write_text(
        "ADDITIONAL_FILTER_PATTERNS = [r'.*\\bbanana\\b.*']\n"
        "STOPWORDS = ['okay']\n"
        "def no_shouting(text):\n"
        "    return not text.isupper()\n"
        "CUSTOM_FILTERS = [no_shouting]\n"
    )
    f = TranscriptionFilter.from_config(config)
    assert not f.keep("I like banana bread")[0]
    assert not f.keep("okay okay")[0]
    assert not f.keep("STOP THE MEETING")[0]
    assert f.keep("Okay, the meeting is over.")[0]

    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    app = create_app(
        collector_settings(database_url, redis_url, FILTER_CONFIG_PATH=str(config)), run_workers=False
    )
    async with app.router.lifespan_context(app):
        collector = app.state.collector
        await collector.segments.ensure_group()
        texts = ["I like banana bread", "STOP THE MEETING", "Okay, the meeting is over."]
        segs = [Segment(start=i, end=i + 1, text=t) for i, t in enumerate(texts)]
        await push(redis, transcription(token, "s1", segs))
        for _ in range(3):
            await collector.segments.read_once(block_ms=1)
        assert await collector.persister.run_once() == 1
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as c:
            body = (await c.get("/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": token})).json()
    assert [s["text"] for s in body["segments"]] == ["Okay, the meeting is over."]
    assert await count_rows(db, meeting_id) == 1

    config.write_text("CUSTOM_FILTERS = ['not callable']\n")
    with pytest.raises(RuntimeError, match="CUSTOM_FILTERS"):
        create_app(collector_settings(database_url, redis_url, FILTER_CONFIG_PATH=str(config)))
