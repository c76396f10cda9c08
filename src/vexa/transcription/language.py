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

Why one utterance is not enough to be sure: on a Spanish speaker's first
sentence (espeak, through the bot) ``base`` said Latin with p = 0.63 about one
run in six, and 4 s of it made the session "confident" at once, so nothing ever
corrected it. A language is now certain after a few seconds only when the pooled
evidence is clear (share ≥ 0.75), otherwise after more speech; and when the
stream ends first, the leading language is the best there will be, so what was
committed while unsure is decoded again in it (``PendingRevisions``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

MIN_EVIDENCE_S = 3.0  # pooled speech needed before the session's language is trusted ...
SURE_SHARE = 0.75  # ... when the leading language holds this share of it
SETTLED_EVIDENCE_S = 8.0  # with this much pooled speech ...
MIN_SHARE = 0.5  # ... a plain majority is enough
SWITCH_MIN_S = 2.0  # an utterance at least this long ...
SWITCH_MIN_P = 0.85  # ... and this sure of another language is decoded in it
MAX_WEIGHT_S = 10.0  # one utterance counts for at most this many seconds of evidence


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
        self.switched: set[str] = set()  # languages an utterance was decoded in on its own evidence
        # The latest utterance's contribution: (its start, weight, evidence). An utterance decoded
        # in full more than once (a short pause inside it, then more speech) counts once, with its
        # latest detection, which heard the most of it.
        self._latest: tuple[float, float, dict[str, float]] | None = None

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
        sure = (self._weight >= MIN_EVIDENCE_S and share >= SURE_SHARE) or (
            self._weight >= SETTLED_EVIDENCE_S and share >= MIN_SHARE
        )
        return LanguageChoice(lang, share, sure)

    def settled(self, ended: bool) -> str | None:
        """The language to decode uncertain segments again in: the session's once it is certain,
        or at the end of the stream the leading one (all the evidence there will be); else None."""
        current = self.current()
        if current is None or not (current.confident or ended):
            return None
        return current.language

    def choose(
        self, probs: dict[str, float], speech_s: float, utterance: float | None = None
    ) -> LanguageChoice:
        """Pool one utterance's detection and pick the language to decode it in.

        ``utterance``: where it starts; a later detection of the same one replaces its evidence.
        """
        if self.fixed:
            return LanguageChoice(self.fixed, 1.0, True)
        if self._latest is not None and utterance is not None and self._latest[0] == utterance:
            _, weight, evidence = self._latest
            self._weight -= weight
            for lang, score in evidence.items():
                self._evidence[lang] -= score
        weight = min(max(speech_s, 0.1), MAX_WEIGHT_S)
        evidence = {lang: p * weight for lang, p in probs.items()}
        for lang, score in evidence.items():
            self._evidence[lang] += score
        self._weight += weight
        self._latest = None if utterance is None else (utterance, weight, evidence)
        own_lang, own_p = max(probs.items(), key=lambda kv: kv[1])
        pooled = self.current()
        assert pooled is not None
        if own_lang != pooled.language and speech_s >= SWITCH_MIN_S and own_p >= SWITCH_MIN_P:
            self.switched.add(own_lang)
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

    def next_due(self, language: str | None, keep: set[str]) -> Revision | None:
        """The next segment to decode again in ``language`` (None: not settled yet, none).

        Segments in a language of ``keep`` (one an utterance switched to on its own strong
        evidence) stay as they are: that speaker did change language.
        """
        if language is None:
            return None
        while self.items:
            item = self.items.pop(0)
            if item.language != language and item.language not in keep:
                return item
        return None
