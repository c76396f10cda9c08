"""What a decode is asked and answers, and what the service emits: words, jobs, segments.

Shared by the policy (``streaming``), the engine and the session, so none of them
has to import another's internals.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16000
_NORM = re.compile(r"[^\w']+", re.UNICODE)
WORD_SPEECH_PAD_S = 0.5  # a word this close to speech VAD heard counts as heard (soft onsets)


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


LanguageChooser = Callable[[dict[str, float], float], tuple[str, float]]


@dataclass(frozen=True, slots=True)
class DecodeJob:
    """What the engine needs for one decode of one session's utterance."""

    audio: np.ndarray
    offset: float  # session time of audio[0]
    since: float  # session time the utterance (part) starts: earlier words are context only
    language: str | None  # None: detect (multilingual models)
    task: str
    prompt: str | None
    final: bool  # the speech has paused: decoded with the final beam, may be committed as is
    speech_s: float = 0.0  # seconds of speech in ``audio`` (weight of its language evidence)
    detect_audio: np.ndarray | None = None  # what to detect the language on, if not ``audio``
    choose_language: LanguageChooser | None = None
    revise: int | None = None  # index of a completed segment this decode replaces (language fixed)

    @property
    def end(self) -> float:
        return self.offset + len(self.audio) / SAMPLE_RATE


@dataclass(slots=True)
class OutSegment:
    start: float
    end: float
    text: str
    completed: bool
    language: str | None
    words: list[Word] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The segment as sent. ``words`` is ours (additive; WhisperLive clients ignore it): the
        per-word timing lets a mixed stream be attributed word by word to the speakers."""
        data: dict[str, object] = {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "completed": self.completed,
            "language": self.language,
        }
        if self.words:
            data["words"] = [
                {
                    "start": round(w.start, 3),
                    "end": round(w.end, 3),
                    "word": w.text,
                    "probability": round(w.probability, 3),
                }
                for w in self.words
            ]
        return data


def join_words(words: list[Word]) -> str:
    return "".join(w.text for w in words).strip()


def heard(words: list[Word], speech: list[tuple[float, float]]) -> list[Word]:
    """Drop words where VAD heard no speech (hallucinations); clamp starts to speech onsets.

    Whisper tends to start the first word at 0.0 after leading silence; VAD knows better.
    """
    kept: list[Word] = []
    for w in words:
        hits = [
            (a, b) for a, b in speech if w.start < b + WORD_SPEECH_PAD_S and w.end > a - WORD_SPEECH_PAD_S
        ]
        if not hits:
            continue
        onset = hits[0][0]
        if w.start < onset < w.end:
            w = Word(onset, w.end, w.text, w.probability)
        kept.append(w)
    return kept
