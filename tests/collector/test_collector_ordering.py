"""Nothing stale, nothing lost: replayed drafts, late backlogs, bad rows, concurrent writers."""

from __future__ import annotations

import asyncio
import json

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

from vexa.collector.persistence import Persister
from vexa.collector.segments import MeetingLock, StoredSegment, now_utc, persist_lock_key, segments_key
from vexa.events import meeting_channel
from vexa.streams import Segment

DEAD = STREAM + ":dead"


async def _texts(harness, token: str, **params) -> list[str]:
    resp = await harness.client.get(
        f"/transcripts/google_meet/{NATIVE}", headers={"X-API-Key": token}, params=params
    )
    assert resp.status_code == 200, resp.text
    return [s["text"] for s in resp.json()["segments"]]


async def _rows(db, meeting_id: int) -> list[str]:
    async with db.engine.begin() as conn:
        return list(
            (
                await conn.execute(
                    text("SELECT text FROM transcriptions WHERE meeting_id = :m ORDER BY start_time"),
                    {"m": meeting_id},
                )
            ).scalars()
        )


async def test_a_replayed_older_draft_never_overwrites_a_newer_one(harness, db, redis, make_user):
    """A dead consumer's pending draft, claimed after newer ones were applied, changes nothing."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    old = transcription(token, "s1", [Segment(start=1, end=2, text="First draft of the sentence")])
    await push(redis, old)
    await push(redis, transcription(token, "s1", [Segment(start=1, end=3, text="Second, better draft.")]))
    # A collector reads the first draft and dies before acknowledging it.
    got = await redis.xreadgroup("collector_group", "doomed", {STREAM: ">"}, count=1)
    assert len(got[0][1]) == 1
    await harness.drain()  # the newer draft is applied
    await asyncio.sleep(0.15)  # past PENDING_MSG_TIMEOUT_MS
    pubsub = redis.pubsub()
    await pubsub.subscribe(meeting_channel(meeting_id))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    assert await harness.collector.segments.claim_stale() == 1  # the old one is handled late...
    assert await _texts(harness, token) == ["Second, better draft."]  # ...and does not win in Redis
    assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3) is None  # nor live
    await pubsub.aclose()

    await harness.collector.persister.persist_meeting(meeting_id, force=True)
    assert await _rows(db, meeting_id) == ["Second, better draft."]

    # The same late replay once the newer draft is already in PostgreSQL (field gone from Redis).
    await push(redis, transcription(token, "s1", [Segment(start=1, end=4, text="Third and final.")]))
    await redis.xreadgroup("collector_group", "doomed", {STREAM: ">"}, count=1)
    await push(redis, transcription(token, "s1", [Segment(start=9, end=10, text="Later words.")]))
    await harness.drain()
    await harness.collector.persister.persist_meeting(meeting_id, force=True)
    # Nothing newer of start=1 was applied, so "Third and final." is handled late but is the newest:
    await asyncio.sleep(0.15)
    assert await harness.collector.segments.claim_stale() == 1
    await harness.collector.persister.persist_meeting(meeting_id, force=True)
    assert await _rows(db, meeting_id) == ["Third and final.", "Later words."]

    # And an old draft arriving after that (a second collector's slow handling) is refused by
    # PostgreSQL's version check, while the API shows the stored text meanwhile.
    stale = StoredSegment(
        start=1,
        end_time=2,
        text="First draft of the sentence",
        session_uid="s1",
        updated_at=now_utc(),
        version="1-0",
    )
    await redis.hset(segments_key(meeting_id), stale.field, stale.model_dump_json())
    assert await _texts(harness, token) == ["Third and final.", "Later words."]
    await harness.collector.persister.persist_meeting(meeting_id, force=True)
    assert await _rows(db, meeting_id) == ["Third and final.", "Later words."]
    assert await redis.hlen(segments_key(meeting_id)) == 0


async def test_a_backlog_lands_in_the_meeting_it_was_spoken_in(harness, db, redis, make_user):
    """A stopped meeting's late messages never land in a newer meeting with the same native id."""
    user_id, token = await make_user()
    old_meeting = await insert_meeting(db, user_id, status="completed")
    await push(redis, session_start(token, "old-session", T0))
    await harness.drain()
    new_meeting = await insert_meeting(db, user_id, status="active")

    # The old session's backlog, without and with the producer's meeting_db_id.
    await push(redis, transcription(token, "old-session", [Segment(start=1, end=2, text="Old words.")]))
    bound = transcription(token, "old-bot", [Segment(start=1, end=2, text="Bound words.")])
    await push(redis, bound.model_copy(update={"meeting_db_id": old_meeting}))
    await push(redis, transcription(token, "new-session", [Segment(start=1, end=2, text="New words.")]))
    # A producer naming a meeting that is not this user's (or not this native id) is refused.
    await push(redis, bound.model_copy(update={"uid": "forged", "meeting_db_id": old_meeting + 100}))
    await harness.drain()

    assert sorted(await _texts(harness, token, meeting_id=old_meeting)) == ["Bound words.", "Old words."]
    assert await _texts(harness, token, meeting_id=new_meeting) == ["New words."]
    dead = await redis.xrange(DEAD)
    assert len(dead) == 1 and "unknown meeting" in dead[0][1]["reason"]


async def test_a_refused_row_is_dead_lettered_and_the_rest_persisted(harness, db, redis, make_user):
    """One value PostgreSQL cannot store (written before validation existed) blocks nothing."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text="Good words one.")]))
    await push(redis, transcription(token, "s1", [Segment(start=5, end=6, text="Good words two.")]))
    await harness.drain()
    bad = StoredSegment(
        start=3, end_time=4, text="nul \x00 inside", session_uid="s1", updated_at=now_utc(), version="5-0"
    )
    await redis.hset(segments_key(meeting_id), bad.field, bad.model_dump_json())

    assert await harness.collector.persister.persist_meeting(meeting_id, force=True) == 2
    assert await _rows(db, meeting_id) == ["Good words one.", "Good words two."]
    assert await redis.hlen(segments_key(meeting_id)) == 0
    dead = await redis.xrange(DEAD)
    assert len(dead) == 1
    assert dead[0][1]["meeting_id"] == str(meeting_id) and "PostgreSQL" in dead[0][1]["reason"]
    assert json.loads(dead[0][1]["payload"])["text"] == "nul \x00 inside"
    assert token not in json.dumps(dead[0][1])

    # The same text sent today is refused at the stream, with the reason, before it reaches Redis.
    await redis.xadd(
        STREAM,
        {
            "payload": transcription(token, "s1", [Segment(start=7, end=8, text="x")])
            .model_dump_json()
            .replace('"text":"x"', '"text":"a\\u0000b"')
        },
    )
    await harness.drain()
    dead = await redis.xrange(DEAD)
    assert len(dead) == 2 and "NUL" in dead[1][1]["reason"]


async def test_unpersisted_segments_do_not_expire(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text="Keep me.")]))
    await harness.drain()
    assert await redis.ttl(segments_key(meeting_id)) == -1


async def test_patch_waits_for_a_status_transition_and_keeps_its_keys(harness, db, redis, make_user):
    """PATCH /meetings during a transition (the bot-manager holds the row) loses none of its keys."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    async with db.engine.connect() as conn:
        tx = await conn.begin()
        await conn.execute(text("SELECT id FROM meetings WHERE id = :m FOR UPDATE"), {"m": meeting_id})
        patch = asyncio.create_task(
            harness.client.patch(
                f"/meetings/google_meet/{NATIVE}",
                json={"data": {"notes": "Budget"}},
                headers={"X-API-Key": token},
            )
        )
        await asyncio.sleep(0.5)
        assert not patch.done()  # it waits for the transition's row lock
        await conn.execute(
            text(
                "UPDATE meetings SET status = 'completed', data = data || "
                '\'{"completion_reason": "stopped", "status_transition": [{"to": "completed"}]}\'::jsonb '
                "WHERE id = :m"
            ),
            {"m": meeting_id},
        )
        await tx.commit()
    resp = await patch
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["notes"] == "Budget" and data["completion_reason"] == "stopped"
    assert data["status_transition"] == [{"to": "completed"}] and data["name"] == "Weekly"


async def test_a_persistence_round_racing_a_delete_writes_no_rows(harness, db, redis, make_user):
    """The meeting row lock fences a round whose Redis lock expired during a DELETE /meetings."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id, status="completed")
    await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text="Soon redacted.")]))
    await harness.drain()
    async with db.engine.connect() as conn:
        tx = await conn.begin()  # DELETE /meetings, part way: row locked, rows being deleted
        await conn.execute(text("SELECT id FROM meetings WHERE id = :m FOR UPDATE"), {"m": meeting_id})
        await conn.execute(text("DELETE FROM transcriptions WHERE meeting_id = :m"), {"m": meeting_id})
        persisting = asyncio.create_task(harness.collector.persister.persist_meeting(meeting_id, force=True))
        await asyncio.sleep(0.5)
        await conn.execute(
            text(
                "UPDATE meetings SET platform_specific_id = NULL, data = '{\"redacted\": true}' WHERE id = :m"
            ),
            {"m": meeting_id},
        )
        await tx.commit()
    assert await persisting == 0
    assert await count_rows(db, meeting_id) == 0
    assert not await redis.exists(segments_key(meeting_id))


async def test_the_persist_lock_is_renewed_while_held(redis):
    lock = MeetingLock(redis, 7, ttl_ms=300)
    assert await lock.acquire()
    await asyncio.sleep(1.0)  # three TTLs
    assert await redis.get(persist_lock_key(7)) == lock.token and not lock.lost
    await lock.release()
    assert await redis.get(persist_lock_key(7)) is None


async def test_only_acknowledged_entries_are_trimmed_and_lag_is_reported(harness, db, redis, make_user):
    """A collector outage under load loses nothing to trimming; /health shows how far behind it is."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    ids = [
        await push(redis, transcription(token, "s1", [Segment(start=i, end=i + 1, text=f"Words {i}.")]))
        for i in range(30)
    ]
    trimmer = harness.collector.trimmer
    # Delivered to a consumer that died (pending, unacknowledged), the rest not read at all.
    await redis.xreadgroup("collector_group", "doomed", {STREAM: ">"}, count=5)
    lag = (await trimmer.run_once())[STREAM]
    assert lag.trimmed == 0 and lag.length == 30 and lag.pending == 5 and lag.lag == 25
    health = (await harness.client.get("/health")).json()
    assert health["streams"][STREAM] == {"length": 30, "lag": 25, "pending": 5, "trimmed": 0}

    await harness.drain()  # the 25 unread ones are handled and acknowledged
    assert (await trimmer.run_once())[STREAM].length == 30  # the dead consumer's 5 still block
    await asyncio.sleep(0.15)
    assert await harness.collector.segments.claim_stale() == 5
    lag = (await trimmer.run_once())[STREAM]
    assert lag.trimmed == 30 and lag.length == 0 and lag.lag == 0 and lag.pending == 0
    await harness.collector.persister.persist_meeting(meeting_id, force=True)
    assert await count_rows(db, meeting_id) == 30 and ids


async def test_two_collectors_share_the_persisting_and_write_each_row_once(harness, db, redis, make_user):
    """Two collectors' rounds over the same meetings split them (each locks batches the other then
    skips), so persisting scales with collectors; still no row twice and none missing."""
    user_id, token = await make_user()
    natives = [f"abc-defg-{chr(97 + i // 26)}{chr(97 + i % 26)}a" for i in range(60)]
    meeting_ids = [await insert_meeting(db, user_id, native=native) for native in natives]
    for i, native in enumerate(natives):
        segment = Segment(start=1, end=2, text="Hello.")
        await push(redis, transcription(token, f"s{i}", [segment], native=native))
    await harness.drain()
    first = harness.collector.persister
    second = Persister(
        redis, db.sessionmaker, first.filter, immutability_threshold_s=0, interval_s=first.interval_s,
        dead_stream=first.dead_stream,
    )  # fmt: skip
    done = await asyncio.gather(first.run_once(force=True), second.run_once(force=True))
    assert sum(done) == 60 and min(done) > 0, done  # both took part
    for meeting_id in meeting_ids:
        assert await _rows(db, meeting_id) == ["Hello."]
    assert await first.run_once(force=True) == 0 and await second.run_once(force=True) == 0
