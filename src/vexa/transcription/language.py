"""Which language each utterance is in, when the client did not say.

Why not "detect once and lock" (what WhisperLive and our first version did):
Whisper's language guess on the first second of a meeting is often wrong —
German speech came out as Thai for a whole meeting because ``base`` says
``en`` after one second, ``th`` after two and ``de`` (p = 0.88) only from
three. So the evidence of every utterance is pooled (weighted by its length,
capped so one long monologue does not drown everything else) and each
utterance is decoded in the language the pooled evidence favours. An utterance
that is long and confidently in another language wins on its own, so people
who switch languages are followed. A language the client gives always wins.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

MIN_EVIDENCE_S = 3.0  # pooled speech needed before the session's language is trusted
SWITCH_MIN_S = 2.0  # an utterance at least this long ...
SWITCH_MIN_P = 0.85  # ... and this sure of another language is decoded in it
MAX_WEIGHT_S = 10.0  # one utterance counts for at most this many seconds of evidence
MIN_SHARE = 0.5  # ... and the leading language must hold this share of it


@dataclass(frozen=True, slots=True)
class LanguageChoice:
    language: str
    probability: float
    confident: bool  # backed by enough pooled speech (or given by the client)


class LanguageTracker:
    def __init__(self, fixed: str | None = None) -> None:
        self.fixed = fixed
        self._evidence: dict[str, float] = defaultdict(float)
        self._weight = 0.0

    def set_fixed(self, language: str | None) -> None:
        """The client changed the language (``session_control``); None means detect again."""
        self.fixed = language

    def current(self) -> LanguageChoice | None:
        """The session's language so far, or None before any evidence."""
        if self.fixed:
            return LanguageChoice(self.fixed, 1.0, True)
        if not self._weight:
            return None
        lang, score = max(self._evidence.items(), key=lambda kv: kv[1])
        share = score / self._weight
        return LanguageChoice(lang, share, self._weight >= MIN_EVIDENCE_S and share >= MIN_SHARE)

    def choose(self, probs: dict[str, float], speech_s: float) -> LanguageChoice:
        """Pool one utterance's detection and pick the language to decode it in."""
        if self.fixed:
            return LanguageChoice(self.fixed, 1.0, True)
        weight = min(max(speech_s, 0.1), MAX_WEIGHT_S)
        for lang, p in probs.items():
            self._evidence[lang] += p * weight
        self._weight += weight
        own_lang, own_p = max(probs.items(), key=lambda kv: kv[1])
        pooled = self.current()
        assert pooled is not None
        if own_lang != pooled.language and speech_s >= SWITCH_MIN_S and own_p >= SWITCH_MIN_P:
            return LanguageChoice(own_lang, own_p, True)
        return pooled


@dataclass(slots=True)
class Revision:
    index: int  # position of the completed segment in the session
    audio: object  # np.ndarray of the utterance (typed loosely: this module stays numpy-free)
    offset: float
    language: str


class PendingRevisions:
    """Utterances committed before the session's language was certain, kept to decode again.

    A short first utterance is often detected wrongly ("Guten Morgen" as Thai); once
    pooled evidence is confident, those utterances are decoded again in the session's
    language and their segments re-published with the same start, so the transcript
    is corrected instead of keeping the wrong script. Bounded by ``max_s`` of audio.
    """

    def __init__(self, max_s: float = 30.0) -> None:
        self.max_s = max_s
        self.items: list[Revision] = []
        self._seconds = 0.0

    def remember(self, index: int, audio: object, seconds: float, offset: float, language: str) -> None:
        if self._seconds + seconds <= self.max_s:
            self.items.append(Revision(index, audio, offset, language))
            self._seconds += seconds

    def next_due(self, current: LanguageChoice | None) -> Revision | None:
        """The next segment to decode again, once the session's language is certain."""
        if current is None or not current.confident:
            return None
        while self.items:
            item = self.items.pop(0)
            if item.language != current.language:
                return item
        return None
