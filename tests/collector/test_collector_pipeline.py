"""Messages through real Redis into real PostgreSQL, read back through the collector's API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from collector_helpers import (
    NATIVE,
    STREAM,
    T0,
    count_rows,
    insert_meeting,
    push,
    session_start,
    transcription,
)
from sqlalchemy import text

from vexa.collector.segments import ACTIVE_MEETINGS, segments_key
from vexa.streams import Segment


async def _transcript(harness, token: str, native: str = NATIVE, **params) -> dict:
    resp = await harness.client.get(
        f"/transcripts/google_meet/{native}", headers={"X-API-Key": token}, params=params
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_mutable_overwrite_then_persisted_with_absolute_times(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await push(redis, session_start(token, "s1", T0))
    await push(redis, transcription(token, "s1", [Segment(start=1.0, end=2.0, text="hello wor")]))
    await push(
        redis,
        transcription(
            token,
            "s1",
            [
                Segment(start=1.0, end=2.5, text="Hello world, this is the budget review.", language="en"),
                Segment(start=3.0, end=4.0, text="Next item on the agenda.", language="en"),
            ],
        ),
    )
    assert await harness.drain() == 3

    # Still mutable: one draft per start, the later one won; nothing in PostgreSQL yet.
    body = await _transcript(harness, token)
    assert [s["text"] for s in body["segments"]] == [
        "Hello world, this is the budget review.",
        "Next item on the agenda.",
    ]
    first = body["segments"][0]
    assert first["completed"] is False and first["end"] == 2.5 and first["language"] == "en"
    assert first["absolute_start_time"].startswith((T0 + timedelta(seconds=1)).isoformat()[:19])
    assert body["id"] == meeting_id and body["data"] == {"name": "Weekly"}
    assert await count_rows(db, meeting_id) == 0
    assert await redis.sismember(ACTIVE_MEETINGS, str(meeting_id))
    assert await redis.ttl(segments_key(meeting_id)) == -1  # no TTL: unpersisted text never expires
    # Nothing is pending: everything was acknowledged.
    assert (await redis.xpending(STREAM, "collector_group"))["pending"] == 0

    # A threshold the segments have not reached: nothing moves.
    harness.collector.persister.threshold = timedelta(seconds=60)
    assert await harness.collector.persister.run_once() == 0
    harness.collector.persister.threshold = timedelta(0)
    assert await harness.collector.persister.run_once() == 2
    assert await count_rows(db, meeting_id) == 2
    assert await redis.hlen(segments_key(meeting_id)) == 0
    assert not await redis.sismember(ACTIVE_MEETINGS, str(meeting_id))

    body = await _transcript(harness, token)
    assert [s["completed"] for s in body["segments"]] == [True, True]
    assert body["segments"][1]["absolute_end_time"].startswith((T0 + timedelta(seconds=4)).isoformat()[:19])
    assert body["segments"][0]["created_at"] is not None


async def test_redis_draft_wins_over_persisted_row_and_newer_draft_survives(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await push(
        redis, transcription(token, "s1", [Segment(start=5.0, end=6.0, text="First version of this.")])
    )
    await harness.drain()
    assert await harness.collector.persister.run_once() == 1
    # The same start again (a late revision): the draft is shown instead of the row...
    await push(
        redis, transcription(token, "s1", [Segment(start=5.0, end=6.5, text="Second version of this.")])
    )
    await harness.drain()
    body = await _transcript(harness, token)
    assert [(s["text"], s["completed"]) for s in body["segments"]] == [("Second version of this.", False)]
    # ...and persisting it updates the row instead of adding one.
    assert await harness.collector.persister.run_once() == 1
    async with db.engine.begin() as conn:
        rows = (
            await conn.execute(
                text("SELECT text, end_time FROM transcriptions WHERE meeting_id = :m"), {"m": meeting_id}
            )
        ).all()
    assert rows == [("Second version of this.", 6.5)]


async def test_persist_crash_between_commit_and_hdel_creates_no_duplicates(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    segs = [
        Segment(start=float(i), end=i + 0.9, text=f"Sentence number {i} of the meeting.") for i in range(5)
    ]
    await push(redis, transcription(token, "s1", segs))
    await harness.drain()

    persister = harness.collector.persister

    async def crash(_meeting_id: int) -> None:
        raise RuntimeError("simulated crash after COMMIT, before HDEL")

    persister.after_commit = crash
    with pytest.raises(RuntimeError, match="simulated crash"):
        await persister.run_once()
    assert await count_rows(db, meeting_id) == 5
    assert await redis.hlen(segments_key(meeting_id)) == 5  # still there: the HDEL never ran
    assert not await redis.exists(f"collector:persist_lock:{meeting_id}")  # released even on a crash

    persister.after_commit = None
    assert await persister.run_once() == 5
    assert await count_rows(db, meeting_id) == 5
    assert await redis.hlen(segments_key(meeting_id)) == 0


async def test_a_draft_changed_after_the_read_is_not_deleted(harness, db, redis, make_user):
    """The persister removes only the values it persisted (compare-and-delete)."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await push(redis, transcription(token, "s1", [Segment(start=1.0, end=2.0, text="An early draft here.")]))
    await harness.drain()

    async def revise_meanwhile(_meeting_id: int) -> None:
        await push(
            redis, transcription(token, "s1", [Segment(start=1.0, end=2.2, text="A revised draft here.")])
        )
        await harness.drain()

    harness.collector.persister.after_commit = revise_meanwhile
    assert await harness.collector.persister.run_once() == 1
    live = await redis.hgetall(segments_key(meeting_id))
    assert [json.loads(v)["text"] for v in live.values()] == ["A revised draft here."]
    assert await redis.sismember(ACTIVE_MEETINGS, str(meeting_id))


async def test_filters_drop_hallucinations_keep_speech(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    texts = [
        "[Music]",
        "Subtitles by the Amara.org community",
        "um uh",
        ".",
        "We agreed to ship the export feature on Friday.",
        "Yes.",
        "Thanks.",
        "Thank you.",
    ]
    await push(
        redis,
        transcription(
            token, "s1", [Segment(start=float(i), end=i + 0.5, text=t) for i, t in enumerate(texts)]
        ),
    )
    await harness.drain()
    assert await harness.collector.persister.run_once() == 4
    assert await redis.hlen(segments_key(meeting_id)) == 0  # filtered ones are removed too
    body = await _transcript(harness, token)
    # Short real speech ("Thanks.", "Thank you.") is kept: it is what people say.
    assert [s["text"] for s in body["segments"]] == [
        "We agreed to ship the export feature on Friday.",
        "Yes.",
        "Thanks.",
        "Thank you.",
    ]


async def test_session_start_is_idempotent(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await push(redis, session_start(token, "s1", T0))
    await push(redis, session_start(token, "s1", T0 + timedelta(hours=1)))  # a redelivery must not move it
    await harness.drain()
    async with db.engine.begin() as conn:
        rows = (
            await conn.execute(
                text("SELECT session_uid, session_start_time FROM meeting_sessions WHERE meeting_id = :m"),
                {"m": meeting_id},
            )
        ).all()
    assert rows == [("s1", T0)]


async def test_live_events_published(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    pubsub = redis.pubsub()
    await pubsub.subscribe(f"meeting:{meeting_id}:events")
    try:
        await push(
            redis, transcription(token, "s1", [Segment(start=0.5, end=1.5, text="Live words spoken.")])
        )
        await harness.drain()
        await harness.collector.persister.run_once()
        events = []
        for _ in range(50):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg:
                events.append(json.loads(msg["data"]))
            if len(events) == 2:
                break
    finally:
        await pubsub.aclose()
    assert [e["type"] for e in events] == ["transcript.mutable", "transcript.finalized"]
    assert events[0]["meeting"] == {"id": meeting_id, "platform": "google_meet", "native_id": NATIVE}
    mutable, final = events[0]["payload"]["segments"], events[1]["payload"]["segments"]
    assert mutable[0]["text"] == "Live words spoken." and mutable[0]["completed"] is False
    assert final[0]["text"] == "Live words spoken." and final[0]["completed"] is True
    assert mutable[0]["start"] == 0.5 and mutable[0]["end"] == 1.5
