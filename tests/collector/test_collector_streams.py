"""Dead letters, stale-message claiming and speaker attribution."""

from __future__ import annotations

import asyncio
import json

import pytest
from collector_helpers import STREAM, insert_meeting, push, transcription

from vexa.auth import TokenVerifier
from vexa.collector import speakers
from vexa.collector.app import Collector
from vexa.collector.consumer import is_transient
from vexa.collector.segments import segments_key
from vexa.db import Database
from vexa.embedded import free_port
from vexa.streams import Segment, SpeakerEvent

DEAD = STREAM + ":dead"


async def test_bad_messages_are_dead_lettered_and_acknowledged(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    good = transcription(token, "s1", [Segment(start=1, end=2, text="A good segment here.")])
    sent = {
        await redis.xadd(STREAM, {"payload": "{not json"}): "invalid message",
        await redis.xadd(STREAM, {"data": good.model_dump_json()}): "missing 'payload' field",
        await redis.xadd(
            STREAM, {"payload": json.dumps({"type": "transcription", "uid": "s1", "segments": []})}
        ): "invalid message",
        await redis.xadd(
            STREAM,
            {"payload": good.model_dump_json().replace('"start":1.0', '"start":"soon"')},
        ): "invalid message",
        await push(redis, good.model_copy(update={"token": "not-a-real-token"})): "unauthorized",
        await push(redis, good.model_copy(update={"meeting_id": "zzz-zzzz-zzz"})): "unknown meeting",
    }
    ok_id = await push(redis, good)
    await harness.drain()

    dead = await redis.xrange(DEAD)
    assert [fields["original_id"] for _, fields in dead] == list(sent)
    for (_, fields), (original, reason) in zip(dead, sent.items(), strict=True):
        assert fields["reason"].startswith(reason), fields["reason"]
        assert fields["original_id"] == original
        assert token not in fields["reason"]  # reasons are logged: never the token
    assert dead[0][1]["payload"] == "{not json"
    assert "token: Field required" in dead[2][1]["reason"]
    assert "segments.0.start" in dead[3][1]["reason"]
    # Everything acknowledged; only the good message left a segment.
    assert (await redis.xpending(STREAM, "collector_group"))["pending"] == 0
    live = await redis.hgetall(segments_key(meeting_id))
    assert [json.loads(v)["text"] for v in live.values()] == ["A good segment here."]
    assert ok_id not in [f["original_id"] for _, f in dead]


async def test_messages_of_a_killed_consumer_are_claimed(harness, db, redis, make_user):
    """A consumer read messages and died before ACK: after PENDING_MSG_TIMEOUT_MS another one takes them."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    for i in range(4):
        await push(
            redis, transcription(token, "s1", [Segment(start=i, end=i + 1, text=f"Claimed words {i}.")])
        )
    # The doomed consumer: XREADGROUP delivers the messages to it, then it is gone.
    got = await redis.xreadgroup("collector_group", "doomed-collector", {STREAM: ">"}, count=10)
    assert len(got[0][1]) == 4
    assert await harness.drain() == 0  # they are not ours to read...
    pending = await redis.xpending_range(STREAM, "collector_group", "-", "+", 10)
    assert {p["consumer"] for p in pending} == {"doomed-collector"}

    await asyncio.sleep(0.15)  # past PENDING_MSG_TIMEOUT_MS=100 of the test settings
    assert await harness.collector.segments.claim_stale() == 4  # ...until they go stale
    assert (await redis.xpending(STREAM, "collector_group"))["pending"] == 0
    assert await redis.hlen(segments_key(meeting_id)) == 4


def _ev(kind: str, name: str, ms: float) -> speakers.TimedEvent:
    return speakers.TimedEvent(ms, kind, name, name)


def test_map_speaker_statuses():
    events = [
        _ev("SPEAKER_START", "Alice", 0),
        _ev("SPEAKER_END", "Alice", 5000),
        _ev("SPEAKER_START", "Bob", 4000),
        _ev("SPEAKER_END", "Bob", 10000),
        _ev("SPEAKER_START", "Carol", 20000),  # never ends: counts until the segment's end
    ]
    assert speakers.map_speaker([], 1, 2) == (None, speakers.NO_EVENTS)
    assert speakers.map_speaker(events, 1, 3) == ("Alice", speakers.MAPPED)
    assert speakers.map_speaker(events, 6, 9) == ("Bob", speakers.MAPPED)
    # Alice 1.5 s and Bob 2 s of a 3 s segment: both substantial, Bob has more.
    assert speakers.map_speaker(events, 3.5, 6.5) == ("Bob", speakers.MULTIPLE)
    # A sliver of Bob inside a long Alice stretch is not "concurrent".
    assert speakers.map_speaker(events, 0, 4.2) == ("Alice", speakers.MAPPED)
    assert speakers.map_speaker(events, 12, 15) == (None, speakers.UNKNOWN)
    assert speakers.map_speaker(events, 21, 25) == ("Carol", speakers.MAPPED)


async def test_speaker_events_stream_maps_segments(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    for kind, name, ms in [
        ("SPEAKER_START", "Alice", 0),
        ("SPEAKER_END", "Alice", 5000),
        ("SPEAKER_START", "Bob", 4000),
        ("SPEAKER_END", "Bob", 10000),
    ]:
        event = SpeakerEvent(uid="s1", event_type=kind, participant_name=name, relative_timestamp_ms=ms)
        await redis.xadd("speaker_events_relative", {"payload": event.model_dump_json()})
    await redis.xadd("speaker_events_relative", {"payload": '{"uid": "s1"}'})  # malformed: dead-lettered
    await push(
        redis,
        transcription(
            token,
            "s1",
            [
                Segment(start=1, end=3, text="Alice talks about the plan."),
                Segment(start=3.5, end=6.5, text="Both of them at once now."),
                Segment(start=12, end=14, text="Nobody was flagged speaking."),
                Segment(start=15, end=16, text="Per participant capture here.", speaker="Dana"),
            ],
        ),
    )
    await push(redis, transcription(token, "s2", [Segment(start=1, end=2, text="A session without events.")]))
    await harness.drain()
    assert await redis.zcard(speakers.speaker_events_key("s1")) == 4
    assert await redis.ttl(speakers.speaker_events_key("s1")) > 0
    assert len(await redis.xrange("speaker_events_relative:dead")) == 1

    await harness.collector.persister.run_once()
    resp = await harness.client.get("/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": token})
    got = {
        (s["session_uid"], s["start"]): (s["speaker"], s["speaker_mapping_status"])
        for s in resp.json()["segments"]
    }
    assert got == {
        ("s1", 1.0): ("Alice", "MAPPED"),
        ("s1", 3.5): ("Bob", "MULTIPLE_CONCURRENT_SPEAKERS"),
        ("s1", 12.0): (None, "UNKNOWN"),
        ("s1", 15.0): ("Dana", "MAPPED"),
        ("s2", 1.0): (None, "NO_SPEAKER_EVENTS"),
    }
    assert meeting_id == resp.json()["id"]


async def test_late_speaker_events_are_applied_at_persistence(harness, db, redis, make_user):
    user_id, token = await make_user()
    await insert_meeting(db, user_id)
    await push(
        redis, transcription(token, "s1", [Segment(start=1, end=2, text="Spoken before the event came.")])
    )
    await harness.drain()
    live = await harness.client.get("/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": token})
    assert live.json()["segments"][0]["speaker_mapping_status"] == "NO_SPEAKER_EVENTS"
    event = SpeakerEvent(
        uid="s1", event_type="SPEAKER_START", participant_name="Erin", relative_timestamp_ms=500
    )
    await redis.xadd("speaker_events_relative", {"payload": event.model_dump_json()})
    await harness.drain()
    await harness.collector.persister.run_once()
    final = await harness.client.get("/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": token})
    assert [(s["speaker"], s["speaker_mapping_status"]) for s in final.json()["segments"]] == [
        ("Erin", "MAPPED")
    ]


async def test_database_outage_leaves_message_pending_for_retry(harness, database_url, db, redis, make_user):
    """No ACK on infrastructure errors: with PostgreSQL unreachable nothing is dead-lettered or lost."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await push(redis, transcription(token, "s1", [Segment(start=1, end=2, text="Said during the outage.")]))

    # The same consumer, but its database is a port nobody listens on (a real connection failure).
    down = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/vexa", pool_size=1)
    broken = Collector(harness.collector.settings, down, redis, TokenVerifier(down.sessionmaker))
    broken.segments._recheck_own_pending = False
    with pytest.raises(Exception) as raised:
        await broken.segments.read_once(block_ms=1)
    assert is_transient(raised.value)
    await down.dispose()
    assert (await redis.xpending(STREAM, "collector_group"))["pending"] == 1
    assert await redis.xlen(DEAD) == 0

    # Database back: the consumer re-reads its own pending list first and handles the message.
    await harness.drain()
    assert (await redis.xpending(STREAM, "collector_group"))["pending"] == 0
    assert await redis.hlen(segments_key(meeting_id)) == 1
