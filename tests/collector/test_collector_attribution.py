"""Mixed-stream speaker attribution: words, not segments, attributed from the speaking indicator."""

from __future__ import annotations

import pytest
from collector_helpers import NATIVE, insert_meeting, push, transcription

from vexa.collector import attribution, speakers
from vexa.collector.attribution import WordTiming, attribute_words, split_by_speaker
from vexa.streams import Segment, SegmentWord, SpeakerEvent


def _ev(kind: str, key: str, ms: float, name: str | None = None) -> speakers.TimedEvent:
    return speakers.TimedEvent(ms, kind, key, name or key)


def _words(*spans: tuple[float, float, str]) -> list[WordTiming]:
    return [WordTiming(a, b, f" {w}") for a, b, w in spans]


def test_words_follow_the_turn_change_inside_one_segment():
    events = [
        _ev("SPEAKER_START", "alice", 0),
        _ev("SPEAKER_END", "alice", 2100),
        _ev("SPEAKER_START", "bob", 2300),
        _ev("SPEAKER_END", "bob", 5000),
    ]
    words = _words(
        (0.2, 0.6, "we"), (0.6, 1.0, "ship"), (1.1, 1.9, "friday."), (2.4, 2.8, "sounds"), (2.8, 3.3, "good")
    )
    got = attribute_words(events, words)
    assert [a.name for a in got] == ["alice", "alice", "alice", "bob", "bob"]
    assert all(a.confidence > 0.9 for a in got)
    pieces = split_by_speaker(words, got, 0.35)
    assert [(p.speaker, "".join(w.word for w in p.words).strip()) for p in pieces] == [
        ("alice", "we ship friday."),
        ("bob", "sounds good"),
    ]


def test_flicker_is_bridged_and_a_word_in_the_gap_stays_with_the_speaker():
    events = [
        _ev("SPEAKER_START", "alice", 0),
        _ev("SPEAKER_END", "alice", 1000),  # the indicator drops out for 300 ms mid-sentence
        _ev("SPEAKER_START", "alice", 1300),
        _ev("SPEAKER_END", "alice", 3000),
    ]
    (att,) = attribute_words(events, _words((1.05, 1.25, "and")))
    assert att.name == "alice" and att.confidence == 1.0


def test_crosstalk_keeps_the_likelier_speaker_with_a_lower_confidence_and_unknown_without_evidence():
    events = [
        _ev("SPEAKER_START", "alice", 0),
        _ev("SPEAKER_END", "alice", 3000),
        _ev("SPEAKER_START", "bob", 2500),
        _ev("SPEAKER_END", "bob", 6000),
    ]
    words = _words((2.4, 2.9, "overlap"), (20.0, 20.5, "nobody"))
    overlap, nobody = attribute_words(events, words)
    assert overlap.name in ("alice", "bob") and 0.4 <= overlap.confidence < 0.9
    assert nobody.name is None and nobody.confidence == 0.0
    pieces = split_by_speaker(words, [overlap, nobody], min_confidence=0.95)
    assert [p.speaker for p in pieces] == [None], "below the threshold both are unknown, one piece"


def test_a_renamed_participant_keeps_the_name_they_spoke_under():
    events = [
        _ev("SPEAKER_START", "p1", 0, "Alice"),
        _ev("SPEAKER_END", "p1", 1000, "Alice"),
        _ev("SPEAKER_START", "p1", 5000, "Alice Smith"),
        _ev("SPEAKER_END", "p1", 6000, "Alice Smith"),
    ]
    got = attribute_words(events, _words((0.2, 0.8, "hello"), (5.2, 5.8, "again")))
    assert [a.name for a in got] == ["Alice", "Alice Smith"]


@pytest.mark.parametrize("threshold", [0.35, 0.6])
async def test_completed_mixed_segment_is_split_at_the_speaker_change_and_persisted(
    harness, db, redis, make_user, threshold
):
    harness.collector.segments.handler.min_confidence = threshold
    harness.collector.persister.speaker_min_confidence = threshold
    user_id, token = await make_user()
    await insert_meeting(db, user_id)
    for kind, name, ms in [
        ("SPEAKER_START", "Alice", 0),
        ("SPEAKER_END", "Alice", 2000),
        ("SPEAKER_START", "Bob", 1800),
        ("SPEAKER_END", "Bob", 4500),
    ]:
        event = SpeakerEvent(
            uid="mix",
            event_type=kind,
            participant_name=name,
            participant_id=name.lower(),
            relative_timestamp_ms=ms,
        )
        await redis.xadd("speaker_events_relative", {"payload": event.model_dump_json()})
    spans = [
        (0.3, 0.7, " The"),
        (0.7, 1.5, " numbers,"),
        (1.8, 2.0, " right?"),
        (2.3, 2.7, " Thanks"),
        (2.7, 3.4, " Alice."),
    ]
    words = [SegmentWord(start=a, end=b, word=w) for a, b, w in spans]
    draft = Segment(start=0.3, end=2.5, text="The numbers, right? Thanks", words=words[:4])
    final = Segment(start=0.3, end=3.4, text="The numbers, right? Thanks Alice.", words=words, completed=True)
    await push(redis, transcription(token, "mix", [draft]))
    await harness.drain()
    # The draft is one segment, by the majority of its words' time.
    resp = await harness.client.get(f"/transcripts/google_meet/{NATIVE}", headers={"X-API-Key": token})
    assert [(s["text"], s["speaker"]) for s in resp.json()["segments"]] == [
        ("The numbers, right? Thanks", "Alice")
    ]
    await push(redis, transcription(token, "mix", [final]))
    await harness.drain()
    persisted = await harness.collector.persister.run_once()

    resp = await harness.client.get(f"/transcripts/google_meet/{NATIVE}", headers={"X-API-Key": token})
    segs = resp.json()["segments"]
    got = [(s["start"], s["text"], s["speaker"], s["speaker_mapping_status"]) for s in segs]
    if threshold < 0.5:
        # "right?" is said while both indicators are on (a tie): the likelier guess is kept.
        assert persisted == 2
        assert got == [
            (0.3, "The numbers, right?", "Alice", "MAPPED"),
            (2.3, "Thanks Alice.", "Bob", "MAPPED"),
        ]
        assert segs[0]["speaker_confidence"] < 0.95 and segs[1]["speaker_confidence"] == 1.0
    else:
        # "Say unknown rather than guess": below the threshold the crosstalk word is nobody's.
        assert persisted == 3
        assert got == [
            (0.3, "The numbers,", "Alice", "MAPPED"),
            (1.8, "right?", None, "UNKNOWN"),
            (2.3, "Thanks Alice.", "Bob", "MAPPED"),
        ]
        assert segs[1]["speaker_confidence"] == 0.5


def test_unknown_speaker_setting_is_validated():
    from vexa.collector.settings import CollectorSettings

    with pytest.raises(ValueError):
        CollectorSettings(SPEAKER_MIN_CONFIDENCE=1.5, DATABASE_URL="postgresql://x/y", REDIS_URL="redis://x")
    assert attribution.REACH_MS > attribution.BRIDGE_MS
