"""A split mixed-stream segment that is revised later is split again, leaving nothing stale.

The transcription service revises a completed segment (new words for the same start, e.g.
after a language revision). Its first version was stored as pieces split at speaker changes;
the revision splits elsewhere. Whether the first split is still in Redis or already in
PostgreSQL, the transcript must end up with exactly the revision's pieces: no stale piece
and no word twice. Real Redis, real PostgreSQL, the collector's own consumer and persister.
"""

from __future__ import annotations

from collector_helpers import NATIVE, insert_meeting, push, transcription
from sqlalchemy import text

from vexa.collector.segments import StoredSegment, segments_key
from vexa.streams import Segment, SegmentWord, SpeakerEvent

UID = "mix-revised"
# Alice 0-2 s, Bob 2-4 s, Carol 4-6.5 s on the speaking indicator.
TURNS = [("Alice", 0, 2000), ("Bob", 2000, 4000), ("Carol", 4000, 6500)]
FIRST = [
    (0.3, 0.8, "Budget"),
    (0.8, 1.6, "review."),
    (2.2, 2.6, "Sounds"),
    (2.6, 3.5, "fine."),
    (4.2, 4.8, "Agreed"),
    (4.8, 5.5, "then."),
]
# The revision heard Bob's words as the end of Alice's turn and Carol starting earlier.
REVISED = [
    (0.3, 0.8, "Budget"),
    (0.8, 1.6, "review,"),
    (1.6, 1.9, "fine."),
    (4.1, 4.6, "Agreed"),
    (4.6, 5.0, "then,"),
    (5.0, 5.6, "Friday."),
]


async def _speaker_events(redis, turns=TURNS) -> None:
    for name, on, off in turns:
        for kind, ms in (("SPEAKER_START", on), ("SPEAKER_END", off)):
            event = SpeakerEvent(
                uid=UID,
                event_type=kind,
                participant_name=name,
                participant_id=name.lower(),
                relative_timestamp_ms=ms,
            )
            await redis.xadd("speaker_events_relative", {"payload": event.model_dump_json()})


def _segment(words: list[tuple[float, float, str]]) -> Segment:
    return Segment(
        start=words[0][0],
        end=words[-1][1],
        text=" ".join(w for _, _, w in words),
        words=[SegmentWord(start=a, end=b, word=f" {w}") for a, b, w in words],
        completed=True,
    )


async def _hash(redis, meeting_id: int) -> list[tuple[float, str, str | None]]:
    raw = await redis.hgetall(segments_key(meeting_id))
    segs = sorted((StoredSegment.model_validate_json(v) for v in raw.values()), key=lambda s: s.start)
    return [(s.start, s.text, s.speaker) for s in segs]


async def _rows(db, meeting_id: int) -> list[tuple[float, str, str | None]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT start_time, text, speaker FROM transcriptions "
                "WHERE meeting_id = :m ORDER BY start_time"
            ),
            {"m": meeting_id},
        )
        return [tuple(r) for r in rows]


async def _api(harness, token: str) -> list[tuple[float, str, str | None]]:
    resp = await harness.client.get(f"/transcripts/google_meet/{NATIVE}", headers={"X-API-Key": token})
    assert resp.status_code == 200, resp.text
    return [(s["start"], s["text"], s["speaker"]) for s in resp.json()["segments"]]


FIRST_SPLIT = [(0.3, "Budget review.", "Alice"), (2.2, "Sounds fine.", "Bob"), (4.2, "Agreed then.", "Carol")]
REVISED_SPLIT = [(0.3, "Budget review, fine.", "Alice"), (4.1, "Agreed then, Friday.", "Carol")]


async def test_a_revision_replaces_the_split_still_in_redis(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await _speaker_events(redis)
    await push(redis, transcription(token, UID, [_segment(FIRST)]))
    await harness.drain()
    assert await _hash(redis, meeting_id) == FIRST_SPLIT

    await push(redis, transcription(token, UID, [_segment(REVISED)]))
    await harness.drain()
    assert await _hash(redis, meeting_id) == REVISED_SPLIT  # Bob's stale piece is gone
    assert await _api(harness, token) == REVISED_SPLIT

    await harness.collector.persister.run_once()
    assert await _rows(db, meeting_id) == REVISED_SPLIT
    assert await redis.hlen(segments_key(meeting_id)) == 0


async def test_a_revision_replaces_the_split_already_in_postgresql(harness, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await _speaker_events(redis)
    await push(redis, transcription(token, UID, [_segment(FIRST)]))
    await harness.drain()
    assert await harness.collector.persister.run_once() == 3
    assert await _rows(db, meeting_id) == FIRST_SPLIT

    await push(redis, transcription(token, UID, [_segment(REVISED)]))
    await harness.drain()
    # Before it is persisted, the transcript already shows the revision alone (the stored
    # pieces of the first split are hidden, the stored head is replaced by the live one).
    assert await _api(harness, token) == REVISED_SPLIT

    await harness.collector.persister.run_once()
    rows = await _rows(db, meeting_id)
    assert rows == REVISED_SPLIT
    words = " ".join(t for _, t, _ in rows).split()
    assert len(words) == len(set(words)) == len(REVISED)  # no word twice
    assert await _api(harness, token) == REVISED_SPLIT


async def test_an_older_split_persisted_after_a_newer_one_adds_no_piece(harness, db, redis, make_user):
    """A late persister round (or a replay) carrying the first split must not undo the revision."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await _speaker_events(redis)
    await push(redis, transcription(token, UID, [_segment(FIRST)]))
    await harness.drain()
    first = list((await redis.hgetall(segments_key(meeting_id))).items())
    await redis.delete(segments_key(meeting_id))  # set aside, as a slow collector would hold it
    await push(redis, transcription(token, UID, [_segment(REVISED)]))
    await harness.drain()
    await harness.collector.persister.run_once()
    assert await _rows(db, meeting_id) == REVISED_SPLIT

    await redis.hset(segments_key(meeting_id), mapping=dict(first))
    await redis.sadd("active_meetings", str(meeting_id))
    await harness.collector.persister.run_once()
    assert await _rows(db, meeting_id) == REVISED_SPLIT


async def test_speaker_events_that_come_late_re_split_the_segment_when_it_is_persisted(
    harness, db, redis, make_user
):
    """Carol's indicator reaches the collector after the segment: the persister splits it anew."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await _speaker_events(redis, TURNS[:2])
    await push(redis, transcription(token, UID, [_segment(FIRST)]))
    await harness.drain()
    # Without Carol's events her words lean on Bob's nearby interval (or are unknown).
    assert [s for _, _, s in await _hash(redis, meeting_id)][:2] == ["Alice", "Bob"]
    assert "Carol" not in {s for _, _, s in await _hash(redis, meeting_id)}

    await _speaker_events(redis, TURNS[2:])
    await harness.drain()
    await harness.collector.persister.run_once()
    assert await _rows(db, meeting_id) == FIRST_SPLIT
    assert await redis.hlen(segments_key(meeting_id)) == 0
