"""The streaming policy: when to decode, what to commit, what audio to forget.

Why utterances and not a sliding buffer: the first version re-decoded a rolling
buffer and committed what two consecutive decodes agreed on (LocalAgreement,
after ufal's whisper_streaming), cutting the buffer at commit points. On real
speech with uneven pauses it lost words at those cuts ("He might even" gone
from the start of a sentence): Whisper's word times near a buffer's edge are
imprecise, so new words were taken for old ones, and a first word that only one
hypothesis had never reached agreement. Here the unit is the utterance, as VAD
hears it:

- while someone speaks, the utterance so far is decoded every ``min_chunk_s``
  for drafts (shown, never committed);
- as soon as VAD hears ``early_decode_s`` of silence, the whole utterance is
  decoded once more, from its first sample;
- when the silence reaches ``end_silence_s`` (or the client stops sending, or
  the stream ends) the latest decode that heard all of the speech is committed
  as it is — no agreement needed, nothing cut mid-speech.

So a commit normally lands ``end_silence_s`` after the speech ended, and every
word is decoded with its whole utterance as context. Only an utterance longer
than ``max_utterance_s`` without a pause is committed in parts, by local
agreement, at a gap between two agreed words, and the next part starts there.

This module is pure Python + numpy: the engine decodes, the session runs VAD and
the clock, :class:`StreamingTranscriber` decides, so the policy is unit-testable
with scripted speech probabilities and decodes. The shapes it trades in (words,
decode jobs, segments) live in ``words``.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np

from vexa.transcription.language import LanguageTracker, PendingRevisions
from vexa.transcription.vad import SpeechTracker, VadParams
from vexa.transcription.words import SAMPLE_RATE, DecodeJob, DecodeResult, OutSegment, Word, heard, join_words

SENTENCE_END = (".", "?", "!", "\u3002", "\uff1f", "\uff01")  # also CJK full stop, ? and !
RESERVOIR_S = 10.0  # past speech kept to detect the language on, until it is certain


@dataclass(slots=True)
class _Hypothesis:
    words: list[Word]
    end: float  # session time up to which the decode heard audio
    language: str | None
    final: bool = False  # decoded as a whole utterance (final beam and window): may be committed


@dataclass
class _OpenSegment:
    words: list[Word] = field(default_factory=list)  # committed, segment not closed yet
    start: float | None = None  # fixed once shown, so consumers keyed on start see one segment
    language: str | None = None


class StreamingTranscriber:
    """One session's streaming state: audio, speech, hypotheses, segments."""

    def __init__(
        self,
        *,
        language: str | None = None,
        task: str = "transcribe",
        initial_prompt: str | None = None,
        min_chunk_s: float = 1.0,
        early_decode_s: float = 0.25,
        end_silence_s: float = 0.5,
        max_utterance_s: float = 15.0,
        max_segment_s: float = 15.0,
        min_sentence_s: float = 3.0,
        pre_roll_s: float = 0.8,
        vad: VadParams | None = None,
        detect_language: bool = False,
    ) -> None:
        self.task = task
        self.initial_prompt = initial_prompt
        self.min_chunk_s = min_chunk_s
        self.early_decode_s = min(early_decode_s, end_silence_s)
        self.end_silence_s = end_silence_s
        self.max_utterance_s = max_utterance_s
        self.max_segment_s = max_segment_s
        self.min_sentence_s = min_sentence_s
        self.pre_roll_s = pre_roll_s
        self.detect_language = detect_language  # the model is multilingual
        self.languages = LanguageTracker(language)
        self.revisions = PendingRevisions()
        self._revised: list[OutSegment] = []
        self.vad = SpeechTracker(vad)
        self.audio = np.zeros(0, dtype=np.float32)
        self.audio_start = 0  # session sample index of audio[0]
        self.received = 0  # samples received in total
        self.utterance_start: float | None = None  # session time the open utterance's audio starts
        self.hyp: _Hypothesis | None = None  # latest decode of the open utterance
        self.previous_draft: list[Word] = []  # for agreement inside long utterances
        self.committed_tail: list[Word] = []  # last committed words, to drop their echo after a cut
        self.open = _OpenSegment()
        self.completed: list[OutSegment] = []
        self.reservoir = np.zeros(0, dtype=np.float32)  # recent speech, for language detection
        self.in_flight = False
        self.last_job_end = 0.0
        self.consumed = 0.0  # session time up to which audio is committed
        self.decodes = 0
        self.announced_language: str | None = None

    # ---- input ----------------------------------------------------------------------
    def add_audio(self, samples: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, samples.astype(np.float32, copy=False)])
        self.received += len(samples)

    @property
    def duration(self) -> float:
        """Session time of the end of the audio received so far."""
        return self.received / SAMPLE_RATE

    @property
    def offset(self) -> float:
        return self.audio_start / SAMPLE_RATE

    @property
    def language(self) -> str | None:
        current = self.languages.current()
        return current.language if current else None

    def set_language(self, language: str | None) -> None:
        self.languages.set_fixed(language)

    def vad_work(self) -> tuple[np.ndarray, int] | None:
        """Frames VAD has not scored yet (see :class:`SpeechTracker`)."""
        return self.vad.frames_to_score(self.audio, self.audio_start)

    def add_speech_scores(self, probs: np.ndarray, frames: int) -> None:
        self.vad.add_scores(probs, frames)

    # ---- the decision -------------------------------------------------------------------
    def poll(
        self, *, stalled: bool = False, idle: bool = False, end: bool = False
    ) -> tuple[list[OutSegment], DecodeJob | None]:
        """Commit what can be committed, and say what to decode next (None: nothing now).

        ``stalled``: no audio has arrived for ``early_decode_s`` — like a short silence, it
        calls for the final decode, so that an ``idle`` commit finds it done. ``idle``: the
        client has stopped sending audio for a while (muted, throttled tab, network pause) —
        treat it as the end of the utterance. ``end``: the stream ended.
        """
        before = self._draft_signature()
        n_completed = len(self.completed)
        job = self._step(stalled=stalled, idle=idle, end=end)
        return self._changes(before, n_completed), job

    def _step(self, *, stalled: bool, idle: bool, end: bool) -> DecodeJob | None:
        if self.utterance_start is None:
            onset = next((s for s, _ in self.vad.intervals if s >= self.consumed - 1e-3), None)
            if onset is None:
                if end and self.open.start is not None:
                    self._close_open(len(self.open.words))
                self._trim_to(self.vad.scored_until - self.pre_roll_s)
                return None if self.in_flight else self._revision_job(end)
            self.utterance_start = max(self.offset, self.consumed, onset - self.pre_roll_s)
            self.last_job_end = self.utterance_start
        if self.in_flight:
            return None
        if (revision := self._revision_job(end)) is not None:
            return revision
        bound = self._utterance_end()
        if bound is None and (end or idle):
            bound = (self.vad.last_speech_end() or self.utterance_start, None)
        speech_end, next_onset = (
            bound if bound else (self.vad.last_speech_end() or self.utterance_start, None)
        )
        # A decode may be committed if it heard all of this utterance and nothing of the next.
        limit = None if next_onset is None else next_onset - 0.05
        hyp = self.hyp
        usable = (
            hyp is not None
            and hyp.final
            and hyp.end >= speech_end - 1e-6
            and (limit is None or hyp.end <= limit + 1e-6)
        )
        if bound is not None and usable:
            self._commit_utterance()
            if end or next_onset is not None:
                return self._step(stalled=stalled, idle=idle, end=end)
            return None
        if bound is not None or stalled or self.vad.silence_s() >= self.early_decode_s:
            if usable:
                return None  # the decode that heard everything is in; wait for the pause to last
            if limit is not None:
                return self._job(final=True, upto=min(limit, speech_end + self.end_silence_s))
            return self._job(final=True)
        # Drafts of a long utterance cost more each and matter less: space them out with its length.
        spacing = max(self.min_chunk_s, 0.25 * (self.duration - self.utterance_start))
        if self.duration - self.last_job_end >= spacing:
            return self._job(final=False)
        return None

    def _utterance_end(self) -> tuple[float, float | None] | None:
        """(speech end, next onset) once the open utterance is followed by a long enough pause.

        Found in VAD's history, not only at the present moment: a pause that went by while
        a decode was running still ends the utterance there.
        """
        assert self.utterance_start is not None
        spans = [(s, e) for s, e in self.vad.intervals if e > self.utterance_start + 1e-3]
        for (_, end), (nxt, _) in itertools.pairwise(spans):
            if nxt - end >= self.end_silence_s:
                return end, nxt
        if spans and self.vad.silence_s() >= self.end_silence_s:
            return spans[-1][1], None
        return None

    def _job(self, *, final: bool, upto: float | None = None) -> DecodeJob:
        assert self.utterance_start is not None
        start = round((self.utterance_start - self.offset) * SAMPLE_RATE)
        stop = len(self.audio) if upto is None else round((upto - self.offset) * SAMPLE_RATE)
        audio = self.audio[start:stop].copy()
        offset = self.offset + start / SAMPLE_RATE
        job_end = offset + len(audio) / SAMPLE_RATE
        speech_s = sum(
            min(e, job_end) - max(s, self.utterance_start)
            for s, e in self.vad.speech_since(self.utterance_start)
            if s < job_end
        )
        language, detect_audio, chooser = self.languages.fixed, None, None
        if language is None and self.detect_language:
            current = self.languages.current()
            if final:
                chooser = functools.partial(self._choose_language, self.utterance_start)
                if current is None or not current.confident:
                    detect_audio = np.concatenate([self.reservoir, audio])
            elif current is not None:
                language = current.language  # drafts: the best guess so far, no detection pass
        self.in_flight = True
        self.last_job_end = job_end
        return DecodeJob(
            audio=audio,
            offset=offset,
            since=self.utterance_start,
            language=language,
            task=self.task,
            prompt=self._prompt(),
            final=final,
            speech_s=speech_s,
            detect_audio=detect_audio,
            choose_language=chooser,
        )

    def _revision_job(self, end: bool) -> DecodeJob | None:
        """Decode a segment committed while the language was uncertain again, once it is certain
        (or the stream has ended: then the leading language is all the evidence there will be)."""
        language = self.languages.settled(end)
        revision = self.revisions.next_due(language, self.languages.switched)
        if revision is None:
            return None
        self.in_flight = True
        return DecodeJob(
            audio=revision.audio,
            offset=revision.offset,
            since=revision.offset,
            language=language,
            task=self.task,
            prompt=self._prompt(),
            final=True,
            revise=revision.index,
        )

    def _choose_language(
        self, utterance: float, probs: dict[str, float], speech_s: float
    ) -> tuple[str, float]:
        choice = self.languages.choose(probs, speech_s, utterance)
        return choice.language, choice.probability

    def _prompt(self) -> str | None:
        """Only what the client gave. Measured on real speech: the previous text as a prompt
        made Whisper continue past the end of short utterances ("Thank you very much.",
        "We'll see you next time.") far more often than it helped."""
        return self.initial_prompt or None

    # ---- decode results -------------------------------------------------------------
    def apply(self, job: DecodeJob, result: DecodeResult | None) -> list[OutSegment]:
        """Fold one decode in (None: it failed); returns the segments that changed."""
        self.in_flight = False
        if result is None:
            return []
        self.decodes += 1
        before = self._draft_signature()
        n_completed = len(self.completed)
        if job.revise is not None:
            old = self.completed[job.revise]
            text = join_words(result.words) or old.text
            words = result.words if result.words else old.words
            self.completed[job.revise] = OutSegment(old.start, old.end, text, True, result.language, words)
            return [self.completed[job.revise]]
        if self.utterance_start is None or abs(job.since - self.utterance_start) > 1e-6:
            return []  # the utterance was committed meanwhile (end of stream): a stale draft
        words = self._fresh(heard(result.words, self.vad.speech_since(job.since)))
        self.hyp = _Hypothesis(words, job.end, result.language or self.language, job.final)
        if not job.final:
            self.previous_draft = words
            if job.end - self.utterance_start > self.max_utterance_s:
                self._commit_agreed(words, job.end)
        return self._changes(before, n_completed)

    def _fresh(self, words: list[Word]) -> list[Word]:
        """Drop the echo of words committed just before this part of a long utterance began."""
        tail = self.committed_tail
        if not words or not tail or words[0].start - tail[-1].end > 1.0:
            return words
        for n in range(min(5, len(tail), len(words)), 0, -1):
            if [w.key for w in tail[-n:]] == [w.key for w in words[:n]]:
                return words[n:]
        return words

    # ---- committing -----------------------------------------------------------------
    def _commit_utterance(self) -> None:
        """The pause lasted: the latest full decode of the utterance is final."""
        assert self.hyp is not None and self.utterance_start is not None
        self.open.language = self.hyp.language
        self._extend(self.hyp.words)
        self._keep_for_language(self.utterance_start, self.hyp.end, self.hyp.language)
        self._close_open(len(self.open.words))
        end = self.consumed = self.hyp.end
        self.hyp, self.previous_draft, self.utterance_start = None, [], None
        self.committed_tail = []
        self.vad.close_speech()
        self._trim_to(end - self.pre_roll_s)

    def _commit_agreed(self, words: list[Word], job_end: float) -> None:
        """A long utterance without a pause: commit the agreed part up to a gap, start anew there."""
        agreed = 0
        for old, new in zip(self.previous_draft, words, strict=False):
            if old.key != new.key:
                break
            agreed += 1
        # Keep the last agreed word open unless a later one follows it, and stay clear of the
        # buffer's end, where Whisper's words are still moving.
        cut = agreed
        while cut > 0 and (cut >= len(words) or words[cut - 1].end > job_end - 1.0):
            cut -= 1
        if cut == 0 and job_end - (self.utterance_start or 0.0) > self.max_utterance_s + 8.0:
            # No agreement for far too long: commit the older half of the newest decode.
            cut = sum(1 for w in words if w.end <= job_end - self.max_utterance_s / 2)
            cut = min(cut, max(0, len(words) - 1))
        if cut == 0:
            return
        done, rest = words[:cut], words[cut:]
        boundary = (done[-1].end + rest[0].start) / 2 if rest else done[-1].end
        self.open.language = self.hyp.language if self.hyp else self.open.language
        self._extend(done)
        self.committed_tail = done[-5:]
        self.consumed = boundary
        self.utterance_start = max(self.offset, boundary)
        self.hyp = _Hypothesis(rest, job_end, self.hyp.language if self.hyp else None)
        self.previous_draft = rest
        self._trim_to(self.utterance_start)
        self._split_sentences()

    def _keep_for_language(self, start: float, end: float, language: str | None) -> None:
        """While the language is uncertain: pool speech to detect on, keep the utterance to revise."""
        if not self.detect_language or self.languages.fixed:
            return
        current = self.languages.current()
        if current is not None and current.confident:
            self.reservoir = np.zeros(0, dtype=np.float32)
            return
        a = round((start - self.offset) * SAMPLE_RATE)
        b = round((end - self.offset) * SAMPLE_RATE)
        audio = self.audio[max(0, a) : max(0, b)].copy()
        self.reservoir = np.concatenate([self.reservoir, audio])[-int(RESERVOIR_S * SAMPLE_RATE) :]
        if self.open.words and language:
            # _close_open appends this utterance's segment next: remember its index.
            self.revisions.remember(len(self.completed), audio, len(audio) / SAMPLE_RATE, start, language)

    def finish(self) -> list[OutSegment]:
        """End of stream after the last decode (or when decoding failed): commit whatever is open."""
        before = self._draft_signature()
        n_completed = len(self.completed)
        if self.hyp is not None:
            self.open.language = self.hyp.language
            self._extend(self.hyp.words)
            self.hyp = None
        self.utterance_start = None
        if self.open.words or self.open.start is not None:
            self._close_open(len(self.open.words))
        self.audio = np.zeros(0, dtype=np.float32)
        return self._changes(before, n_completed)

    def _extend(self, words: list[Word]) -> None:
        self.open.words.extend(words)

    def _close_open(self, upto: int) -> None:
        """Complete the open segment with its first ``upto`` committed words."""
        words, rest = self.open.words[:upto], self.open.words[upto:]
        language = self.open.language or self.language
        if words:
            start = self.open.start if self.open.start is not None else words[0].start
            self.completed.append(
                OutSegment(start, max(start, words[-1].end), join_words(words), True, language, words)
            )
            self.open = _OpenSegment(words=rest, language=self.open.language)
        elif self.open.start is not None and not rest:
            # A draft was shown and then heard as nothing: close it empty so it is not left dangling.
            self.completed.append(OutSegment(self.open.start, self.open.start, "", True, language))
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

    def _trim_to(self, time: float) -> None:
        """Forget audio before ``time`` (never audio VAD has not scored, nor the open utterance)."""
        limit = self.vad.scored_until
        if self.utterance_start is not None:
            limit = min(limit, self.utterance_start)
        drop = round((min(time, limit) - self.offset) * SAMPLE_RATE)
        if drop <= 0:
            return
        drop = min(drop, len(self.audio))
        self.audio = self.audio[drop:]
        self.audio_start += drop
        self.vad.forget_before(self.offset)

    # ---- output ---------------------------------------------------------------------
    def draft(self) -> OutSegment | None:
        """The open segment: committed-but-unfinished words plus the latest hypothesis."""
        d = self._peek_draft()
        if d is not None and self.open.start is None and d.text:
            self.open.start = d.start
        return d

    def _draft_signature(self) -> tuple[object, ...] | None:
        d = self._peek_draft()
        return None if d is None else (d.start, d.end, d.text)

    def _peek_draft(self) -> OutSegment | None:
        words = self.open.words + (self.hyp.words if self.hyp else [])
        if not words and self.open.start is None:
            return None
        start = self.open.start if self.open.start is not None else words[0].start
        end = max(start, words[-1].end) if words else start
        language = self.hyp.language if self.hyp else self.open.language or self.language
        return OutSegment(start, end, join_words(words), False, language, words)

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
