"""The streaming policy: when to re-decode, what to commit, what audio to forget.

Whisper decodes whole windows, not streams. Following the idea of ufal's
whisper_streaming (LocalAgreement-2), each session keeps a buffer of audio whose
words are not final yet, re-decodes it at most every ``min_chunk_s`` and
commits the longest prefix on which two consecutive decodes agree. Committed
audio is cut off the buffer so a decode never costs more than one bounded
window, however long the meeting. Silero VAD (run by the engine) adds two
things: a pause after speech ends the utterance at once (everything pending is
committed and the segment closes), and words Whisper produced where VAD heard no
speech are dropped, which removes most hallucinations on silence and noise.

This module is pure Python + numpy: the engine produces ``DecodeResult`` and
speech intervals, :class:`StreamingTranscriber` decides, so the policy is
unit-testable with scripted decodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16000
_NORM = re.compile(r"[^\w']+", re.UNICODE)
SENTENCE_END = (".", "?", "!", "\u3002", "\uff1f", "\uff01")  # also CJK full stop, ? and !


@dataclass(frozen=True, slots=True)
class Word:
    """One word with absolute times (seconds from the session's audio offset 0)."""

    start: float
    end: float
    text: str  # as Whisper wrote it, usually with a leading space
    probability: float = 1.0

    @property
    def key(self) -> str:
        """Case- and punctuation-free form, so "Hello," and "hello" agree."""
        return _NORM.sub("", self.text.lower())


@dataclass(slots=True)
class DecodeResult:
    words: list[Word]
    language: str | None = None
    language_probability: float | None = None


@dataclass(frozen=True, slots=True)
class DecodeJob:
    """What the engine needs for one decode of one session's buffer."""

    audio: np.ndarray
    offset: float
    language: str | None
    task: str
    prompt: str | None
    final: bool
    decoded_until: float | None = None  # seconds into ``audio`` the previous decode already heard


@dataclass(slots=True)
class OutSegment:
    start: float
    end: float
    text: str
    completed: bool
    language: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "completed": self.completed,
            "language": self.language,
        }


def join_words(words: list[Word]) -> str:
    return "".join(w.text for w in words).strip()


class HypothesisBuffer:
    """LocalAgreement-2: commit the longest common prefix of the last two hypotheses."""

    def __init__(self) -> None:
        self.committed_in_buffer: list[Word] = []  # committed words whose audio is still buffered
        self.pending: list[Word] = []  # previous hypothesis, not yet committed
        self.new: list[Word] = []
        self.last_committed_time = 0.0

    def insert(self, words: list[Word]) -> None:
        """Take a fresh hypothesis, minus what is already committed."""
        fresh = [w for w in words if w.start > self.last_committed_time - 0.1]
        # A word straddling the commit point is re-recognised with slightly different
        # times: drop the longest n-gram (n <= 5) that repeats the committed tail.
        if fresh and self.committed_in_buffer and abs(fresh[0].start - self.last_committed_time) < 1.0:
            tail = self.committed_in_buffer
            for n in range(min(5, len(tail), len(fresh)), 0, -1):
                if [w.key for w in tail[-n:]] == [w.key for w in fresh[:n]]:
                    fresh = fresh[n:]
                    break
        self.new = fresh

    def flush(self) -> list[Word]:
        """Commit what the previous and the new hypothesis agree on."""
        commit: list[Word] = []
        while self.new and self.pending and self.new[0].key == self.pending[0].key:
            word = self.new.pop(0)
            self.pending.pop(0)
            commit.append(word)
        self.pending = self.new
        self.new = []
        self._committed(commit)
        return commit

    def commit_all(self, before: float | None = None) -> list[Word]:
        """Commit every pending word (ending before ``before`` if given): a pause or the end."""
        if before is None:
            commit, self.pending = self.pending, []
        else:
            commit = [w for w in self.pending if w.end <= before]
            self.pending = self.pending[len(commit) :]
        self._committed(commit)
        return commit

    def _committed(self, words: list[Word]) -> None:
        if words:
            self.committed_in_buffer.extend(words)
            self.last_committed_time = words[-1].end

    def forget_before(self, time: float) -> None:
        """Audio before ``time`` left the buffer: its words no longer need de-duplication."""
        self.committed_in_buffer = [w for w in self.committed_in_buffer if w.end > time]

    def reset(self) -> None:
        self.pending, self.new, self.committed_in_buffer = [], [], []


@dataclass
class _OpenSegment:
    words: list[Word] = field(default_factory=list)
    start: float | None = None  # fixed once shown, so consumers keyed on start see one segment


class StreamingTranscriber:
    """One session's streaming state: audio buffer, hypotheses, segments."""

    def __init__(
        self,
        *,
        language: str | None = None,
        task: str = "transcribe",
        initial_prompt: str | None = None,
        min_chunk_s: float = 1.0,
        max_buffer_s: float = 20.0,
        end_silence_s: float = 0.5,
        max_segment_s: float = 15.0,
        min_sentence_s: float = 3.0,
    ) -> None:
        self.language = language
        self.task = task
        self.initial_prompt = initial_prompt
        self.min_chunk_s = min_chunk_s
        self.max_buffer_s = max_buffer_s
        self.end_silence_s = end_silence_s
        self.max_segment_s = max_segment_s
        self.min_sentence_s = min_sentence_s
        self.language_probability: float | None = None
        self.audio = np.zeros(0, dtype=np.float32)
        self.offset = 0.0  # session time of audio[0]
        self.received = 0  # samples received in total
        self._decoded_upto = 0  # value of `received` at the last decode
        self.hyp = HypothesisBuffer()
        self.open = _OpenSegment()
        self.completed: list[OutSegment] = []
        self.prompt_words: list[Word] = []  # committed words whose audio left the buffer
        self.decodes = 0
        self._heard_until: float | None = None  # session time up to which Whisper has decoded

    # ---- input ----------------------------------------------------------------------
    def add_audio(self, samples: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, samples.astype(np.float32, copy=False)])
        self.received += len(samples)

    @property
    def duration(self) -> float:
        """Session time of the end of the audio received so far."""
        return self.received / SAMPLE_RATE

    def due(self) -> bool:
        return (self.received - self._decoded_upto) / SAMPLE_RATE >= self.min_chunk_s

    def make_job(self, final: bool = False) -> DecodeJob | None:
        """A decode of the current buffer, or None when there is nothing new to hear."""
        if len(self.audio) == 0 or (self.received == self._decoded_upto and not final):
            return None
        self._decoded_upto = self.received
        return DecodeJob(
            audio=self.audio.copy(),
            offset=self.offset,
            language=self.language,
            task=self.task,
            prompt=self._prompt(),
            final=final,
            decoded_until=None if self._heard_until is None else max(0.0, self._heard_until - self.offset),
        )

    def _prompt(self) -> str | None:
        context = self.prompt_words + [w for w in self.open.words if w.end <= self.offset]
        text = join_words(context[-60:])[-200:]
        parts = [p for p in (self.initial_prompt, text) if p]
        return " ".join(parts) or None

    # ---- decode results -------------------------------------------------------------
    def apply(
        self,
        job: DecodeJob,
        speech: list[tuple[float, float]],
        result: DecodeResult | None,
        skipped: bool = False,
    ) -> tuple[list[OutSegment], bool]:
        """Fold one decode in; returns (segments that changed, language newly detected).

        ``speech`` are VAD intervals in seconds relative to ``job.audio``. Audio that
        arrived during the decode is kept: only the decoded part is trimmed. ``skipped``
        means VAD found no speech Whisper has not heard already, so the previous
        hypothesis stands (no decode was spent) and only the pause check runs.
        """
        self.decodes += 0 if skipped else 1
        before = self._draft_signature()
        n_completed = len(self.completed)
        detected = False
        job_end = job.offset + len(job.audio) / SAMPLE_RATE
        if result is not None and self.language is None and result.language and result.words:
            self.language, self.language_probability = result.language, result.language_probability
            detected = True
        if not speech:
            # Silence: whatever was pending ends here; keep a short tail in case a word starts.
            self._close_utterance(self.hyp.commit_all())
            self._trim_to(max(self.offset, job_end - 0.3) if not job.final else job_end)
            return self._changes(before, n_completed), detected
        if not skipped:
            self._heard_until = job_end
            words = _align_to_speech(result.words if result else [], speech, job.offset)
            self.hyp.insert(words)
            self._extend(self.hyp.flush())
        last_speech_end = job.offset + speech[-1][1]
        paused = job_end - last_speech_end >= self.end_silence_s - 0.05
        if paused or job.final:
            self._close_utterance(self.hyp.commit_all())
            self._trim_to(last_speech_end if not job.final else job_end)
        else:
            self._split_sentences()
            first_speech = job.offset + speech[0][0]
            if first_speech - self.offset > 1.0 and not self.open.words and not self.hyp.pending:
                self._trim_to(first_speech - 0.3)  # leading silence costs decode time for nothing
            if job_end - self.offset > self.max_buffer_s:
                self._force_trim(job_end)
        return self._changes(before, n_completed), detected

    def finish(self) -> list[OutSegment]:
        """End of stream: commit and complete whatever is still open."""
        before = self._draft_signature()
        n_completed = len(self.completed)
        self._close_utterance(self.hyp.commit_all())
        if self.open.start is not None and not self.open.words:
            self._close_open(0)
        self.audio = np.zeros(0, dtype=np.float32)
        return self._changes(before, n_completed)

    def _extend(self, words: list[Word]) -> None:
        self.open.words.extend(words)

    def _close_utterance(self, tail: list[Word]) -> None:
        self._extend(tail)
        self._close_open(len(self.open.words))

    def _close_open(self, upto: int) -> None:
        """Complete the open segment with its first ``upto`` committed words."""
        words, rest = self.open.words[:upto], self.open.words[upto:]
        if words:
            start = self.open.start if self.open.start is not None else words[0].start
            self.completed.append(
                OutSegment(start, max(start, words[-1].end), join_words(words), True, self.language)
            )
            self.prompt_words.extend(words)
            self.prompt_words = self.prompt_words[-100:]
            self.open = _OpenSegment(words=rest, start=None)
        elif self.open.start is not None and not rest and not self.hyp.pending:
            # A draft was shown and then revised to nothing: close it empty so it is not left dangling.
            self.completed.append(OutSegment(self.open.start, self.open.start, "", True, self.language))
            self.open = _OpenSegment()

    def _split_sentences(self) -> None:
        """Close the open segment at a committed sentence end, or when it grows too long."""
        words = self.open.words
        if not words:
            return
        start = self.open.start if self.open.start is not None else words[0].start
        cut = 0
        for i, w in enumerate(words):
            if w.text.rstrip().endswith(SENTENCE_END) and w.end - start >= self.min_sentence_s:
                cut = i + 1
        if cut == 0 and words[-1].end - start >= self.max_segment_s:
            cut = len(words)
        if cut:
            self._close_open(cut)

    def _force_trim(self, job_end: float) -> None:
        """Keep a decode window bounded during speech without pauses."""
        target = self.hyp.last_committed_time
        if target - self.offset < 2.0:
            # Nothing recent agreed on: commit what the hypothesis has for the older part.
            self._extend(self.hyp.commit_all(before=job_end - self.max_buffer_s / 2))
            target = max(self.hyp.last_committed_time, job_end - self.max_buffer_s)
        self._trim_to(target)

    def _trim_to(self, time: float) -> None:
        drop = round((time - self.offset) * SAMPLE_RATE)
        if drop <= 0:
            return
        drop = min(drop, len(self.audio))
        self.audio = self.audio[drop:]
        self.offset += drop / SAMPLE_RATE
        self.hyp.forget_before(self.offset)
        if not self.hyp.pending and not self.hyp.committed_in_buffer:
            self.hyp.last_committed_time = max(self.hyp.last_committed_time, self.offset)

    # ---- output ---------------------------------------------------------------------
    def draft(self) -> OutSegment | None:
        """The open segment: committed-but-unfinished words plus the latest hypothesis."""
        words = self.open.words + self.hyp.pending
        if not words:
            if self.open.start is None:
                return None
            return OutSegment(self.open.start, self.open.start, "", False, self.language)
        if self.open.start is None:
            self.open.start = words[0].start
        start = self.open.start
        return OutSegment(start, max(start, words[-1].end), join_words(words), False, self.language)

    def _draft_signature(self) -> tuple[object, ...] | None:
        d = self._peek_draft()
        return None if d is None else (d.start, d.end, d.text)

    def _peek_draft(self) -> OutSegment | None:
        words = self.open.words + self.hyp.pending
        if not words and self.open.start is None:
            return None
        start = self.open.start if self.open.start is not None else words[0].start
        end = max(start, words[-1].end) if words else start
        return OutSegment(start, end, join_words(words), False, self.language)

    def _changes(self, before: tuple[object, ...] | None, n_completed: int) -> list[OutSegment]:
        changed = list(self.completed[n_completed:])
        draft = self.draft()
        if draft is not None and (draft.start, draft.end, draft.text) != before and draft.text:
            changed.append(draft)
        return changed

    def snapshot(self, last_n: int = 10) -> list[OutSegment]:
        """What WhisperLive clients expect: the last completed segments, then the draft."""
        out = self.completed[-last_n:]
        draft = self.draft()
        if draft is not None and draft.text:
            out = [*out, draft]
        return list(out)

    def transcript(self) -> str:
        return " ".join(s.text for s in self.completed if s.text)


def _align_to_speech(words: list[Word], speech: list[tuple[float, float]], offset: float) -> list[Word]:
    """Drop words where VAD heard no speech (hallucinations); clamp starts to speech onsets.

    Whisper tends to start the first word at 0.0 after leading silence; VAD knows better.
    """
    pad = 0.2
    kept: list[Word] = []
    for w in words:
        s, e = w.start - offset, w.end - offset
        hits = [(a, b) for a, b in speech if s < b + pad and e > a - pad]
        if not hits:
            continue
        onset = hits[0][0] + offset
        if w.start < onset < w.end:
            w = Word(onset, w.end, w.text, w.probability)
        kept.append(w)
    return kept
