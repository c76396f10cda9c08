"""The streaming policy with scripted speech and scripted decodes: no model needed.

The script is a list of words with times. VAD scores are 1 inside the script's
speech and 0 outside; the "decoder" returns exactly the script's words whose
middle falls inside the decoded audio. So any word missing from, repeated in or
added to the output is the policy's doing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from vexa.transcription.engine import _repeats
from vexa.transcription.language import LanguageTracker
from vexa.transcription.protocol import SessionConfig
from vexa.transcription.scheduling import DRAFT, FINAL, PriorityGate
from vexa.transcription.session import Session, SessionServices
from vexa.transcription.settings import TranscriptionSettings
from vexa.transcription.streaming import StreamingTranscriber
from vexa.transcription.vad import FRAME, SpeechTracker, score_block
from vexa.transcription.wer import normalize, wer
from vexa.transcription.words import SAMPLE_RATE, DecodeJob, DecodeResult, Word

CHUNK = 1600  # 100 ms, as the bot sends


def script(*utterances: tuple[float, str], word_s: float = 0.4, gap_s: float = 0.1) -> list[Word]:
    """Words of each (start, text) utterance, ``word_s`` long with ``gap_s`` between."""
    words = []
    for start, text in utterances:
        t = start
        for w in text.split():
            words.append(Word(t, t + word_s, " " + w))
            t += word_s + gap_s
    return words


@dataclass
class Driver:
    words: list[Word]
    t: StreamingTranscriber = field(default_factory=lambda: StreamingTranscriber(language="en"))
    decode_chunks: int = 0  # how many chunks of audio arrive while a decode runs
    emitted: list = field(default_factory=list)
    jobs: list[DecodeJob] = field(default_factory=list)
    in_flight: tuple[DecodeJob, int] | None = None

    def speech_at(self, time: float) -> float:
        return 1.0 if any(w.start - 0.05 <= time <= w.end + 0.05 for w in self.words) else 0.0

    def decode(self, job: DecodeJob) -> DecodeResult:
        inside = [w for w in self.words if job.offset <= (w.start + w.end) / 2 <= job.end]
        return DecodeResult(inside, "en", 1.0)

    def feed(self, seconds: float, *, send: bool = True, stalled: bool = False, idle: bool = False) -> None:
        for _ in range(round(seconds * SAMPLE_RATE / CHUNK)):
            if send:
                self.t.add_audio(np.zeros(CHUNK, np.float32))
                work = self.t.vad_work()
                if work is not None:
                    _, frames = work
                    first = self.t.vad.scored
                    probs = [self.speech_at((first + i + 0.5) * FRAME / SAMPLE_RATE) for i in range(frames)]
                    self.t.add_speech_scores(np.array(probs, np.float32), frames)
            self.step(stalled=stalled or idle, idle=idle)

    def step(self, *, stalled: bool = False, idle: bool = False, end: bool = False) -> None:
        if self.in_flight is not None:
            job, left = self.in_flight
            if left > 0 and not end:
                self.in_flight = (job, left - 1)
                return
            self.in_flight = None
            self.emitted += self.t.apply(job, self.decode(job))
        while True:
            changes, job = self.t.poll(stalled=stalled, idle=idle, end=end)
            self.emitted += changes
            if job is None:
                return
            self.jobs.append(job)
            if self.decode_chunks and not end:
                self.in_flight = (job, self.decode_chunks)
                return
            self.emitted += self.t.apply(job, self.decode(job))

    def end(self) -> None:
        for _ in range(20):
            self.step(end=True)
        self.emitted += self.t.finish()

    def committed(self) -> list[str]:
        return [s.text for s in self.t.completed if s.text]


MEETING = script(
    (0.5, "and mister john dashwood had then leisure"),
    (4.6, "to consider how much there might be"),  # resumes after a 0.6 s pause
    (8.7, "he was not an ill disposed young man"),
    (13.4, "ten of clubs"),  # after a 0.7 s pause
    (15.3, "five five"),  # after a 0.3 s pause: same utterance as "ten of clubs"
    (19.0, "unless to be rather cold hearted"),
)
TEXT = " ".join(w.text.strip() for w in MEETING)


def test_every_word_committed_once_in_order_with_uneven_pauses() -> None:
    d = Driver(MEETING)
    d.feed(24.0)
    d.end()
    assert " ".join(d.committed()) == TEXT
    assert all(s.completed for s in d.t.completed)


def test_commit_lands_at_the_pause_not_later() -> None:
    d = Driver(script((0.5, "please send the report")))
    speech_end = d.words[-1].end
    d.feed(speech_end + 0.45)
    assert d.committed() == []  # the pause is not long enough yet
    d.feed(0.2)
    assert d.committed() == ["please send the report"]
    # Only audio after the commit stays buffered: cost does not grow with the meeting.
    assert d.t.offset >= speech_end - d.t.pre_roll_s and len(d.t.audio) / SAMPLE_RATE <= d.t.pre_roll_s + 0.5


def test_draft_then_completed_segment_keep_one_start() -> None:
    d = Driver(script((0.5, "please send the quarterly report to finance")))
    d.feed(5.0)
    drafts = [s for s in d.emitted if not s.completed]
    done = [s for s in d.emitted if s.completed]
    assert drafts and len(done) == 1
    assert {s.start for s in drafts} == {done[0].start}
    assert done[0].text == "please send the quarterly report to finance"


def test_pause_that_passed_during_a_slow_decode_still_ends_the_utterance() -> None:
    # Each decode takes 1.5 s of audio time: pauses go by while the service is busy.
    d = Driver(MEETING, decode_chunks=15)
    d.feed(24.0)
    d.end()
    assert " ".join(d.committed()) == TEXT
    assert len(d.committed()) >= 4  # utterances were not merged just because decoding was slow


def test_client_that_stops_sending_gets_its_words_committed() -> None:
    d = Driver(script((0.5, "we will ship it on friday")))
    d.feed(d.words[-1].end + 0.05)  # the stream simply stops right after the last word
    assert d.committed() == []
    d.feed(0.1, send=False, idle=True)  # the session's clock notices no audio arrived
    assert d.committed() == ["we will ship it on friday"]


def test_a_stalled_stream_is_decoded_before_the_idle_commit_is_due() -> None:
    # The final decode starts when audio stops arriving, so the idle commit needs no decode of its own.
    d = Driver(script((0.5, "we will ship it on friday")))
    d.feed(d.words[-1].end + 0.05)
    jobs = len(d.jobs)
    d.feed(0.1, send=False, stalled=True)
    assert len(d.jobs) == jobs + 1 and d.jobs[-1].final
    assert d.committed() == []  # not yet: the client may only be late
    d.feed(0.1, send=False, idle=True)
    assert d.committed() == ["we will ship it on friday"]
    assert len(d.jobs) == jobs + 1  # committed from the decode that was already done


def test_end_of_stream_mid_word_commits_everything() -> None:
    d = Driver(script((0.5, "the numbers look good")))
    d.feed(2.0)  # "good" (2.0-2.4 s) never arrives
    d.end()
    assert d.committed() == ["the numbers look"]
    assert not d.t.audio.size


def test_long_speech_without_pause_is_committed_in_parts_without_loss() -> None:
    text = " ".join(f"w{i}" for i in range(90))  # 45 s of speech, no pause at all
    d = Driver(script((0.5, text)))
    sizes = []
    for _ in range(470):
        d.feed(0.1)
        sizes.append(len(d.t.audio) / SAMPLE_RATE)
    d.end()
    assert " ".join(d.committed()) == text
    assert max(sizes) < d.t.max_utterance_s + 10


def test_words_where_vad_heard_nothing_are_dropped() -> None:
    @dataclass
    class Hallucinating(Driver):
        def decode(self, job: DecodeJob) -> DecodeResult:
            made_up = Word(job.end - 0.05, job.end, " Thanks for watching")
            real = super().decode(job).words
            return DecodeResult(
                real + ([made_up] if job.end - real[-1].end > 1.0 else []) if real else [made_up]
            )

    d = Hallucinating(script((0.5, "hello team"), (5.0, "second point")))
    d.feed(9.0)
    d.end()
    assert d.committed() == ["hello team", "second point"]


def test_silence_only_costs_no_decodes_and_no_memory() -> None:
    d = Driver([])
    d.feed(30.0)
    assert d.jobs == [] and d.t.completed == []
    assert len(d.t.audio) / SAMPLE_RATE <= d.t.pre_roll_s + 0.2


def test_speech_tracker_hysteresis_and_splits() -> None:
    v = SpeechTracker()
    probs = [0.0] * 10 + [0.9] * 20 + [0.4] * 3 + [0.9] * 5 + [0.0] * 20 + [0.8] * 10
    v.add_scores(np.array(probs, np.float32), len(probs))
    f = FRAME / SAMPLE_RATE
    # 0.4 sits between the thresholds: speech continues; a 20-frame pause splits.
    assert [(round(s / f), round(e / f)) for s, e in v.intervals] == [(10, 38), (58, 68)]
    assert round(v.silence_s() / f) == 0


def test_digital_silence_never_reaches_the_model() -> None:
    calls: list[int] = []

    def scorer(audio: np.ndarray) -> np.ndarray:
        calls.append(len(audio) // FRAME)
        return np.full(len(audio) // FRAME, 0.9, np.float32)

    quiet = np.zeros(FRAME * 8, np.float32)
    assert not score_block(quiet, scorer).any() and calls == []
    loud = quiet.copy()
    loud[FRAME * 5 :] = 0.1
    probs = score_block(loud, scorer)
    assert list(probs[:5]) == [0.0] * 5 and all(probs[5:] > 0.5)
    assert calls == [4]  # from one frame before the first loud one (its context) to the end


def test_language_pooled_over_utterances_and_switches_on_strong_evidence() -> None:
    tracker = LanguageTracker()
    # Short first utterance: Whisper's guess is wrong (the meeting is German).
    first = tracker.choose({"th": 0.45, "de": 0.35, "en": 0.2}, 1.0)
    assert first.language == "th" and not first.confident
    second = tracker.choose({"de": 0.88, "th": 0.02, "en": 0.1}, 4.0)
    assert second.language == "de" and second.confident
    assert tracker.choose({"th": 0.6, "de": 0.3, "en": 0.1}, 1.0).language == "de"  # weak: pooled wins
    switched = tracker.choose({"en": 0.95, "de": 0.05}, 3.0)
    assert switched.language == "en"  # a long, sure utterance in another language is followed
    assert tracker.current().language == "de"
    given = LanguageTracker("fr")
    assert given.choose({"de": 0.99}, 10.0).language == "fr"  # the client's language always wins


def test_one_unsure_utterance_does_not_settle_the_language() -> None:
    tracker = LanguageTracker()
    # A Spanish speaker's first sentence, 4 s, that Whisper base took for Latin (CI, stop 25).
    first = tracker.choose({"la": 0.63, "es": 0.27, "en": 0.1}, 4.0, utterance=0.0)
    assert first.language == "la" and not first.confident
    # Decoded in full once more (a pause inside it, then more speech): it still counts once,
    # or these 8.2 s would settle Latin by majority.
    again = tracker.choose({"la": 0.63, "es": 0.27, "en": 0.1}, 4.2, utterance=0.0)
    assert again.language == "la" and not again.confident
    assert tracker.settled(ended=False) is None  # not certain yet: nothing is decoded again
    second = tracker.choose({"es": 0.9, "la": 0.05, "en": 0.05}, 2.5, utterance=6.0)
    assert second.language == "es" and not second.confident  # 6.7 s, share 0.5: not yet
    assert tracker.settled(ended=False) is None
    assert tracker.settled(ended=True) == "es"  # all the evidence there will be: the leader is taken
    assert tracker.switched == set()
    tracker.choose({"es": 0.8, "la": 0.2}, 2.0, utterance=9.0)  # 8.7 s: a majority is enough now
    assert tracker.current().confident and tracker.settled(ended=False) == "es"


@dataclass
class LanguageDriver(Driver):
    """Decodes detect a language: ``detect(since)`` is what Whisper says of the utterance there."""

    detect: object = None
    t: StreamingTranscriber = field(default_factory=lambda: StreamingTranscriber(detect_language=True))

    def decode(self, job: DecodeJob) -> DecodeResult:
        words = super().decode(job).words
        language = job.language
        if language is None:
            probs = self.detect(job.since)
            if job.choose_language is None:
                language = max(probs, key=probs.get)
            else:
                language, _ = job.choose_language(probs, job.speech_s)
        return DecodeResult(words, language, 1.0)


def test_segments_committed_while_unsure_are_decoded_again_when_the_stream_ends() -> None:
    d = LanguageDriver(
        script(
            (0.5, "buenos dias a todos hoy hablamos del presupuesto"), (6.5, "los nuevos proyectos empiezan")
        ),
        detect=lambda since: {"la": 0.63, "es": 0.27, "en": 0.1} if since < 5 else {"es": 0.9, "la": 0.1},
    )
    d.feed(10.0)
    assert [s.language for s in d.t.completed] == ["la", "es"]  # not sure yet: nothing revised
    d.end()
    assert [s.language for s in d.t.completed] == ["es", "es"]
    assert [(j.revise, j.language) for j in d.jobs if j.revise is not None] == [(0, "es")]
    assert " ".join(d.committed()) == " ".join(w.text.strip() for w in d.words)


def test_a_speaker_who_switched_language_is_not_revised_back() -> None:
    d = LanguageDriver(
        script(
            (0.5, "guten morgen zusammen heute sprechen wir über den haushalt"),
            (6.5, "and now the numbers in english"),
        ),
        detect=lambda since: {"de": 0.7, "nl": 0.3} if since < 5 else {"en": 0.95, "de": 0.05},
    )
    d.feed(10.0)
    d.end()
    assert [s.language for s in d.t.completed] == ["de", "en"]
    assert d.t.languages.switched == {"en"}
    assert not any(j.revise is not None for j in d.jobs)


def test_repetition_loops_are_recognised() -> None:
    assert _repeats(["5.", "5.", "5."])
    assert _repeats([" 10", " of", " clubs"] * 3)
    assert not _repeats([" five", " five"])
    assert not _repeats(["the", "cat", "sat", "on", "the", "mat", "and", "the", "dog"])


def test_wer_normalises_case_punctuation_and_digits() -> None:
    assert normalize("Hello, World! 5 p.m.") == ["hello", "world", "five", "p", "m"]
    assert wer("five apples", "5 Apples.") == 0.0
    assert wer("a b c d", "a c d") == 0.25


async def test_waiting_final_decodes_run_before_waiting_drafts() -> None:
    gate = PriorityGate(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot(DRAFT):
            await release.wait()

    async def run(name: str, priority: int) -> None:
        async with gate.slot(priority):
            order.append(name)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(run("draft-a", DRAFT)), asyncio.create_task(run("draft-b", DRAFT))]
    cancelled = asyncio.create_task(run("cancelled-final", FINAL))
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(run("final", FINAL)))
    await asyncio.sleep(0)
    assert gate.queued == 4
    cancelled.cancel()  # a session that ended while waiting gives its place up
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(holder, *waiters)
    assert order == ["final", "draft-a", "draft-b"]
    assert gate.free == 1 and gate.queued == 0


def test_a_stall_is_counted_past_the_clients_own_frame_length() -> None:
    # Bots send 250 ms frames and WhisperLive's client 256 ms ones: their normal gap between frames
    # must not look like audio that stopped coming (each false stall costs a final decode).
    async def unused(*_: object) -> None:
        raise AssertionError("not called")

    services = SessionServices(
        settings=TranscriptionSettings(),
        decode=unused,  # type: ignore[arg-type]
        score_speech=unused,  # type: ignore[arg-type]
        multilingual=False,
        publish_segments=None,
        publish_speaker=None,
    )
    session = Session(services, ws=None, config=SessionConfig(uid="cadence"))  # type: ignore[arg-type]
    for frame_s, stall_after, idle_after in ((0.1, 0.25, 0.4), (0.256, 0.406, 0.556)):
        assert session._add_audio(np.zeros(round(frame_s * SAMPLE_RATE), "<f4").tobytes()) is None
        assert session._stall_after() == pytest.approx(stall_after)
        assert session._idle_after() == pytest.approx(idle_after)
