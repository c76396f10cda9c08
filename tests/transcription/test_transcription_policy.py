"""The streaming policy (LocalAgreement-2 + VAD pauses) with scripted decodes: no model needed."""

from __future__ import annotations

import numpy as np

from vexa.transcription.streaming import (
    SAMPLE_RATE,
    DecodeResult,
    HypothesisBuffer,
    StreamingTranscriber,
    Word,
)
from vexa.transcription.wer import normalize, wer


def words(spec: str, start: float = 0.0, step: float = 0.5) -> list[Word]:
    return [Word(start + i * step, start + i * step + 0.4, " " + w) for i, w in enumerate(spec.split())]


def test_local_agreement_commits_only_the_common_prefix() -> None:
    buf = HypothesisBuffer()
    buf.insert(words("the quick brown"))
    assert buf.flush() == []  # one hypothesis alone commits nothing
    buf.insert(words("the quick brow fox"))
    committed = buf.flush()
    assert [w.key for w in committed] == ["the", "quick"]
    assert [w.key for w in buf.pending] == ["brow", "fox"]
    buf.insert(words("the quick brown fox jumps"))
    # "brown" != "brow": the revision means nothing more is agreed on yet
    assert buf.flush() == []
    buf.insert(words("the quick brown fox jumps over"))
    assert [w.key for w in buf.flush()] == ["brown", "fox", "jumps"]


def test_agreement_ignores_case_and_punctuation() -> None:
    buf = HypothesisBuffer()
    buf.insert([Word(0, 0.4, " Hello,"), Word(0.5, 0.9, " world")])
    buf.flush()
    buf.insert([Word(0, 0.4, " hello"), Word(0.5, 0.9, " world.")])
    assert [w.text for w in buf.flush()] == [" hello", " world."]


def test_no_word_repeated_at_the_commit_boundary() -> None:
    buf = HypothesisBuffer()
    buf.insert(words("one two three"))
    buf.flush()
    buf.insert(words("one two three"))
    assert [w.key for w in buf.flush()] == ["one", "two", "three"]
    # The re-decode re-hears "three" with a start just after the commit point, then new words.
    again = [Word(1.05, 1.4, " three"), Word(1.5, 1.9, " four"), Word(2.0, 2.4, " five")]
    buf.insert(again)
    assert [w.key for w in buf.new] == ["four", "five"]


def _drive(t: StreamingTranscriber, seconds: float, hyp: list[Word], speech_until: float | None):
    t.add_audio(np.zeros(int(seconds * SAMPLE_RATE), np.float32))
    job = t.make_job()
    assert job is not None
    rel_end = len(job.audio) / SAMPLE_RATE
    speech = [] if speech_until is None else [(0.0, min(rel_end, speech_until - job.offset))]
    return t.apply(job, speech, DecodeResult(hyp, "en", 0.99))


def test_draft_then_commit_on_pause_with_stable_start() -> None:
    t = StreamingTranscriber(language="en", min_chunk_s=1.0, end_silence_s=0.5)
    changes, _ = _drive(t, 1.0, words("please send"), speech_until=1.0)
    assert [(s.text, s.completed) for s in changes] == [("please send", False)]
    start = changes[0].start
    changes, _ = _drive(t, 1.0, words("please send the report"), speech_until=2.0)
    assert changes[-1].text == "please send the report" and not changes[-1].completed
    # Speech ended at 2.0 s; at 3.0 s the pause is 1 s: everything commits and the segment closes.
    changes, _ = _drive(t, 1.0, words("please send the report"), speech_until=2.0)
    assert [(s.text, s.completed, s.start) for s in changes] == [("please send the report", True, start)]
    assert t.transcript() == "please send the report"
    # The committed audio left the buffer: decode cost stays bounded.
    assert t.offset >= 1.9 and len(t.audio) / SAMPLE_RATE < 1.2


def test_silence_costs_no_growth_and_yields_nothing() -> None:
    t = StreamingTranscriber(language="en", min_chunk_s=1.0)
    for _ in range(30):
        changes, _ = _drive(t, 1.0, [], speech_until=None)
        assert changes == []
    assert len(t.audio) / SAMPLE_RATE <= 1.0
    assert t.completed == []


def test_words_outside_speech_are_dropped_as_hallucinations() -> None:
    t = StreamingTranscriber(language="en", min_chunk_s=1.0)
    t.add_audio(np.zeros(3 * SAMPLE_RATE, np.float32))
    job = t.make_job()
    assert job is not None
    hyp = [Word(0.2, 0.6, " hello"), Word(2.2, 2.8, " Thank"), Word(2.8, 2.95, " you.")]
    t.apply(job, [(0.0, 1.0)], DecodeResult(hyp, "en", 1.0))
    t.finish()
    assert t.transcript() == "hello"


def test_long_speech_without_pause_keeps_buffer_bounded_and_loses_nothing() -> None:
    t = StreamingTranscriber(language="en", min_chunk_s=1.0, max_buffer_s=8.0, max_segment_s=6.0)
    spoken = [f"w{i}" for i in range(60)]  # two words per second, no pause at all
    for second in range(1, 31):
        t.add_audio(np.zeros(SAMPLE_RATE, np.float32))
        job = t.make_job()
        assert job is not None
        lo = job.offset
        hyp = [
            Word(i * 0.5, i * 0.5 + 0.4, f" {w}")
            for i, w in enumerate(spoken)
            if lo - 0.05 <= i * 0.5 and i * 0.5 + 0.4 <= second
        ]
        t.apply(job, [(0.0, len(job.audio) / SAMPLE_RATE)], DecodeResult(hyp, "en", 1.0))
        assert len(t.audio) / SAMPLE_RATE <= 8.0 + 1.0
    t.finish()
    assert t.transcript().split() == spoken
    assert all(s.completed for s in t.completed)
    assert all(s.end - s.start <= 8.0 for s in t.completed)


def test_end_of_stream_commits_the_tail() -> None:
    t = StreamingTranscriber(language="en", min_chunk_s=1.0)
    _drive(t, 1.0, words("good morning"), speech_until=1.0)
    t.add_audio(np.zeros(SAMPLE_RATE // 2, np.float32))
    job = t.make_job(final=True)
    assert job is not None and job.final
    changes, _ = t.apply(job, [(0.0, 1.5)], DecodeResult(words("good morning everyone"), "en", 1.0))
    changes += t.finish()
    assert t.transcript() == "good morning everyone"
    assert all(s.completed for s in t.completed)


def test_pause_after_skipped_decode_commits_the_previous_hypothesis() -> None:
    """When VAD hears nothing new the engine skips Whisper; the pause still commits the words."""
    t = StreamingTranscriber(language="en", min_chunk_s=1.0, end_silence_s=0.5)
    _drive(t, 1.0, words("see you"), speech_until=1.0)
    t.add_audio(np.zeros(SAMPLE_RATE, np.float32))
    job = t.make_job()
    assert job is not None and job.decoded_until == 1.0  # tells the engine what Whisper already heard
    changes, _ = t.apply(job, [(0.0, 1.0)], None, skipped=True)
    assert [(s.text, s.completed) for s in changes] == [("see you", True)]


def test_language_detected_once_from_first_speech() -> None:
    t = StreamingTranscriber(language=None, min_chunk_s=1.0)
    _, detected = _drive(t, 1.0, words("bonjour"), speech_until=1.0)
    assert detected and t.language == "en"  # the scripted decode said "en"
    _, detected = _drive(t, 1.0, words("bonjour"), speech_until=2.0)
    assert not detected


def test_wer_normalises_case_punctuation_and_digits() -> None:
    assert normalize("At 5 p.m., Bob's TEAM-room!") == ["at", "five", "p", "m", "bob's", "team", "room"]
    assert wer("meet at five thirty", "Meet at 5 thirty.") == 0.0
    assert wer("a b c d", "a x c") == 0.5
