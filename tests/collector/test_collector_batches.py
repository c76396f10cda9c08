"""A consumer batch: many entries per read, committed together, with every reliability rule kept."""

from __future__ import annotations

import asyncio
import json

import pytest
from collector_helpers import STREAM, count_rows, insert_meeting, push, transcription
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text

from vexa.collector.app import Collector
from vexa.collector.consumer import StreamWorker, _stream_entries
from vexa.collector.segments import segments_key
from vexa.embedded import free_port
from vexa.streams import Segment

DEAD = STREAM + ":dead"
GROUP = "collector_group"


async def _pending(redis) -> int:
    return (await redis.xpending(STREAM, GROUP))["pending"]


async def _push_sentences(redis, token: str, n: int) -> None:
    """``n`` one-segment messages of session s1, each a new start."""
    for i in range(n):
        seg = Segment(start=float(i), end=i + 0.5, text=f"Sentence {i} of the meeting.")
        await push(redis, transcription(token, "s1", [seg]))


async def test_a_poisoned_entry_amid_a_batch_is_dead_lettered_and_the_others_persist(
    harness, db, redis, make_user
):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    texts = ["Première phrase, déjà dite.", "第二句话在这里。", "Third one 🙂 with an emoji."]
    await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text=texts[0])]))
    poisoned = await redis.xadd(STREAM, {"payload": '{"type": "transcription", "uid": '})
    await push(redis, transcription(token, "s1", [Segment(start=3, end=4, text=texts[1])]))
    unknown = await push(
        redis, transcription(token, "s9", [Segment(start=1, end=2, text="Nobody's.")], native="zzz-zzzz-zzz")
    )
    await push(redis, transcription(token, "s1", [Segment(start=5, end=6, text=texts[2])]))

    worker = harness.collector.segments
    worker._recheck_own_pending = False
    assert await worker.read_once(block_ms=1) == 5  # one read, one batch
    assert await _pending(redis) == 0
    dead = await redis.xrange(DEAD)
    assert [f["original_id"] for _, f in dead] == [poisoned, unknown]
    assert dead[0][1]["reason"].startswith("invalid message")
    assert dead[1][1]["reason"].startswith("unknown meeting")
    live = await redis.hgetall(segments_key(meeting_id))
    assert sorted(json.loads(v)["text"] for v in live.values()) == sorted(texts)

    assert await harness.collector.persister.run_once(force=True) == 3
    async with db.engine.begin() as conn:
        stored = (
            await conn.execute(
                text("SELECT text FROM transcriptions WHERE meeting_id = :m ORDER BY start_time"),
                {"m": meeting_id},
            )
        ).scalars()
        assert list(stored) == texts  # byte for byte through the batch script and the upsert


async def test_drafts_in_one_batch_keep_stream_order_and_a_replay_changes_nothing(
    harness, db, redis, make_user
):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    ids = [
        await push(
            redis, transcription(token, "s1", [Segment(start=1, end=1.5 + i, text=f"Draft {i} here.")])
        )
        for i in range(4)
    ]
    worker = harness.collector.segments
    worker._recheck_own_pending = False
    assert await worker.read_once(block_ms=1) == 4
    stored = json.loads(await redis.hget(segments_key(meeting_id), "s1:1.000"))
    assert (stored["text"], stored["version"]) == ("Draft 3 here.", ids[3])

    # The first three delivered again (a redelivery after a crash, or another collector's late
    # batch): the newest stays.
    replay = [(i, {"payload": f["payload"]}) for i, f in await redis.xrange(STREAM, ids[0], ids[2])]
    await worker.process(replay)
    stored = json.loads(await redis.hget(segments_key(meeting_id), "s1:1.000"))
    assert (stored["text"], stored["version"]) == ("Draft 3 here.", ids[3])

    assert await harness.collector.persister.run_once(force=True) == 1
    await worker.process(replay)  # after persistence too: the row's version fences it
    await harness.collector.persister.run_once(force=True)
    async with db.engine.begin() as conn:
        rows = (
            await conn.execute(
                text("SELECT text FROM transcriptions WHERE meeting_id = :m"), {"m": meeting_id}
            )
        ).all()
    assert rows == [("Draft 3 here.",)]


async def test_a_crash_mid_batch_commits_nothing_and_redelivery_loses_nothing(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await push(redis, transcription(token, "s1", [Segment(start=0, end=1, text="Before the batch.")]))
    await harness.drain()  # session s1 is now known to the consumer

    await push(redis, transcription(token, "s1", [Segment(start=2, end=3, text="First in the batch.")]))
    await push(redis, transcription(token, "s2", [Segment(start=2, end=3, text="A new session here.")]))
    await push(redis, transcription(token, "s1", [Segment(start=4, end=5, text="Last in the batch.")]))

    # s2 is new: the consumer must look its meeting up, and a lock on the table holds it there.
    worker = harness.collector.segments
    async with db.engine.connect() as blocker:
        await blocker.execute(text("LOCK TABLE meetings IN ACCESS EXCLUSIVE MODE"))
        reading = asyncio.create_task(worker.read_once(block_ms=1))
        for _ in range(200):
            async with db.engine.connect() as probe:
                waiting = (
                    await probe.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                    )
                ).scalar_one()
            if waiting:
                break
            await asyncio.sleep(0.02)
        assert waiting, "the consumer never reached the meeting lookup"
        reading.cancel()  # the collector dies mid-batch
        await asyncio.gather(reading, return_exceptions=True)
        await blocker.rollback()

    assert await _pending(redis) == 3  # nothing acknowledged...
    assert await redis.hlen(segments_key(meeting_id)) == 1  # ...and nothing of the batch written

    assert await harness.drain() == 3  # redelivered from the pending list
    assert await _pending(redis) == 0
    assert await redis.xlen(DEAD) == 0
    assert await harness.collector.persister.run_once(force=True) == 4
    assert await count_rows(db, meeting_id) == 4


async def test_two_consumers_in_one_group_share_the_stream_exactly_once(harness, db, redis, make_user):
    user_id, token = await make_user()
    natives = ["aaa-bbbb-ccc", "ddd-eeee-fff", "ggg-hhhh-iii"]
    meetings = [await insert_meeting(db, user_id, native=n) for n in natives]
    n = 300
    for i in range(n):
        native = natives[i % 3]
        seg = Segment(start=float(i), end=i + 0.5, text=f"Sentence {i} of the meeting.")
        await push(redis, transcription(token, f"s-{native}", [seg], native=native))

    settings = harness.collector.settings.model_copy(
        update={"consumer_name": "second-collector", "redis_stream_read_count": 40}
    )
    first = harness.collector
    first.segments.count = 40
    second = Collector(settings, first.db, redis, first.verifier)

    async def drain(collector: Collector) -> None:
        for _ in range(200):  # bounded
            if first.segments.handled + second.segments.handled >= n:
                return
            await collector.segments.read_once(block_ms=1)

    await asyncio.gather(drain(first), drain(second))
    assert first.segments.handled > 0 and second.segments.handled > 0
    assert first.segments.handled + second.segments.handled == n
    assert await _pending(redis) == 0 and await redis.xlen(DEAD) == 0

    persisted = await asyncio.gather(
        first.persister.run_once(force=True), second.persister.run_once(force=True)
    )
    persisted_total = sum(persisted)
    persisted_total += await first.persister.run_once(force=True)  # what a held lock deferred
    assert persisted_total == n
    assert [await count_rows(db, m) for m in meetings] == [100, 100, 100]


async def test_overlapped_batches_commit_in_stream_order(harness, db, redis, make_user):
    """``run()``'s way: each batch's MULTI in flight while the next is handled; the last draft wins."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    ids = [
        await push(redis, transcription(token, "s1", [Segment(start=1, end=2 + i, text=f"Draft {i}.")]))
        for i in range(7)
    ]
    worker = harness.collector.segments
    worker.count = 2
    for _ in range(20):  # bounded: 4 batches, then empty reads
        if await worker.read_once(block_ms=1, overlap=True) == 0 and worker.handled == 7:
            break
    await worker.flush()
    assert worker.handled == 7 and await _pending(redis) == 0
    stored = json.loads(await redis.hget(segments_key(meeting_id), "s1:1.000"))
    assert (stored["text"], stored["version"]) == ("Draft 6.", ids[6])


async def test_a_failed_overlapped_commit_leaves_it_and_the_next_batch_pending(harness, db, redis, make_user):
    """The MULTI in flight fails (Redis unreachable): the batch handled meanwhile is not committed
    either, both stay in this consumer's pending list, and its next reads deliver them exactly once."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await _push_sentences(redis, token, 4)
    live = harness.collector.segments
    resp = await redis.xreadgroup(GROUP, live.consumer, {STREAM: ">"}, count=4)
    entries = _stream_entries(resp)
    assert len(entries) == 4

    unreachable = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    broken = StreamWorker(
        unreachable, stream=STREAM, group=GROUP, consumer=live.consumer, dead_stream=DEAD,
        handler=live.handler, count=2, name="broken",
    )  # fmt: skip
    try:
        await broken.process(entries[:2], overlap=True)  # handled; its MULTI fails in flight
        with pytest.raises(RedisConnectionError):
            await broken.process(entries[2:], overlap=True)  # handled, then the failure surfaces
    finally:
        await unreachable.aclose()
    assert broken.handled == 0 and broken._recheck_own_pending
    assert await _pending(redis) == 4 and await redis.hlen(segments_key(meeting_id)) == 0

    assert await harness.drain() == 4  # the consumer's own pending list, read again
    assert await _pending(redis) == 0 and await redis.xlen(DEAD) == 0
    assert await harness.collector.persister.run_once(force=True) == 4
    assert await count_rows(db, meeting_id) == 4


async def test_a_batch_read_ahead_then_given_up_is_read_again_exactly_once(harness, db, redis, make_user):
    """``run()`` gives up the batch read ahead before a stale-claim round (``settle``): only
    delivered, never acknowledged, it is read again from this consumer's pending list."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await _push_sentences(redis, token, 6)
    worker = harness.collector.segments
    worker._recheck_own_pending = False
    worker.count = 2
    assert await worker.read_once(block_ms=1, overlap=True) == 2
    assert worker._ready is not None and len(worker._ready) == 2  # the next batch, read ahead
    await worker.flush()
    assert worker.handled == 2 and await _pending(redis) == 2  # delivered, not acknowledged
    await worker.settle()
    assert worker._ready is None and worker._recheck_own_pending
    assert worker.handled == 2 and await _pending(redis) == 2

    assert await harness.drain() == 4  # the given-up batch from the pending list, then the rest
    assert worker.handled == 6 and await _pending(redis) == 0 and await redis.xlen(DEAD) == 0
    assert await harness.collector.persister.run_once(force=True) == 6
    assert await count_rows(db, meeting_id) == 6


async def test_a_session_uid_with_nul_is_dead_lettered(harness, db, redis, make_user):
    """NUL separates the parts of a write's script argument; a uid holding one never reaches it."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    # Built valid, then given the NUL without validation: as a producer that is not ours could send it.
    cut = transcription(token, "s1", [Segment(start=1, end=2, text="Cut here.")])
    bad = await push(redis, cut.model_copy(update={"uid": "s\x001"}))
    bad_meeting = await push(redis, cut.model_copy(update={"meeting_id": "abc\x00-defg-hij"}))
    await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text="Kept whole.")]))
    await harness.drain()
    dead = await redis.xrange(DEAD)
    assert [f["original_id"] for _, f in dead] == [bad, bad_meeting]
    assert [f["reason"] for _, f in dead] == [
        "invalid message: transcription.uid: Value error, NUL characters are not allowed",
        "invalid message: transcription.meeting_id: Value error, NUL characters are not allowed",
    ]
    live = await redis.hgetall(segments_key(meeting_id))
    assert [json.loads(v)["text"] for v in live.values()] == ["Kept whole."]
