"""Word-level speaker attribution for a mixed audio stream (Teams, Zoom web).

A mixed stream carries everyone's voice in one transcription session, so the
only evidence of who said a word is the page's active-speaker indicator, which
the bot reports as SPEAKER_START/SPEAKER_END events (already shifted back by the
indicator's lag, see ``BOT_SPEAKER_LAG_MS``). Segments are too coarse for that:
one segment often spans a turn change, and at a crosstalk both indicators are on.
So each *word* is scored against every speaker's intervals:

* the indicator flickers off in short pauses inside a turn, so a speaker's gaps
  shorter than ``BRIDGE_MS`` are bridged;
* a word overlapping one speaker's interval is theirs with confidence 1; one
  overlapping two gets the larger overlap's speaker with its share as confidence;
* a word overlapping nobody takes the nearest interval within ``REACH_MS``, with a
  confidence falling with the distance;
* an ambiguous word (confidence below ``SMOOTH_BELOW``) whose neighbours agree on
  a speaker it could belong to takes theirs: people rarely swap mid-phrase.

Words whose confidence stays below the caller's threshold are left unknown
(``None``) rather than guessed. The segment is then split where the speaker changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from vexa.collector.segments import StoredSegment
from vexa.collector.speakers import MAPPED, NO_EVENTS, UNKNOWN, TimedEvent, map_speaker

BRIDGE_MS = 600.0
REACH_MS = 1200.0
PAD_MS = 80.0  # Whisper's word edges wander about this much
SMOOTH_BELOW = 0.75


@dataclass(frozen=True, slots=True)
class Interval:
    start: float
    end: float
    key: str
    name: str  # the display name when this interval began (a rename later does not rewrite history)


@dataclass(frozen=True, slots=True)
class WordTiming:
    start: float  # seconds from the session's audio offset 0
    end: float
    word: str


@dataclass(frozen=True, slots=True)
class Attribution:
    key: str | None
    name: str | None
    confidence: float


def intervals(events: list[TimedEvent], open_until_ms: float) -> list[Interval]:
    """Speaking intervals per participant with flicker gaps bridged; an open START lasts until the end."""
    opened: dict[str, tuple[float, str]] = {}
    spans: dict[str, list[Interval]] = {}
    for ev in events:
        if ev.kind == "SPEAKER_START":
            opened.setdefault(ev.key, (ev.ms, ev.name))
        elif ev.kind == "SPEAKER_END" and ev.key in opened:
            start, name = opened.pop(ev.key)
            _add(spans.setdefault(ev.key, []), Interval(start, ev.ms, ev.key, name))
    for key, (start, name) in opened.items():
        _add(spans.setdefault(key, []), Interval(start, max(start, open_until_ms), key, name))
    return [iv for per_key in spans.values() for iv in per_key]


def _add(spans: list[Interval], iv: Interval) -> None:
    if spans and iv.start - spans[-1].end <= BRIDGE_MS:
        last = spans[-1]
        spans[-1] = Interval(last.start, max(last.end, iv.end), last.key, last.name)
    else:
        spans.append(iv)


def _score(spans: list[Interval], word: WordTiming) -> Attribution:
    a, b = word.start * 1000.0 - PAD_MS, word.end * 1000.0 + PAD_MS
    overlap: dict[str, float] = {}
    names: dict[str, str] = {}
    for iv in spans:
        o = min(b, iv.end) - max(a, iv.start)
        if o > 0:
            overlap[iv.key] = overlap.get(iv.key, 0.0) + o
            names.setdefault(iv.key, iv.name)
    if overlap:
        ranked = sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0]))
        key, best = ranked[0]
        return Attribution(key, names[key], best / sum(overlap.values()))
    mid = (a + b) / 2
    nearest = min(spans, key=lambda iv: max(iv.start - mid, mid - iv.end), default=None)
    if nearest is None:
        return Attribution(None, None, 0.0)
    distance = max(nearest.start - b, a - nearest.end, 0.0)
    if distance > REACH_MS:
        return Attribution(None, None, 0.0)
    return Attribution(nearest.key, nearest.name, 0.5 * (1.0 - distance / REACH_MS))


def _candidates(spans: list[Interval], word: WordTiming) -> set[str]:
    a, b = word.start * 1000.0 - PAD_MS - BRIDGE_MS, word.end * 1000.0 + PAD_MS + BRIDGE_MS
    return {iv.key for iv in spans if iv.start < b and iv.end > a}


def attribute_words(events: list[TimedEvent], words: list[WordTiming]) -> list[Attribution]:
    """The most likely speaker of each word, with a confidence in [0, 1]."""
    if not words or not events:
        return [Attribution(None, None, 0.0) for _ in words]
    spans = intervals(events, max(w.end for w in words) * 1000.0 + REACH_MS)
    scored = [_score(spans, w) for w in words]
    out = list(scored)
    for i, att in enumerate(scored):
        if att.confidence >= SMOOTH_BELOW:
            continue
        neighbours = [scored[j] for j in (i - 1, i + 1) if 0 <= j < len(scored)]
        keys = {n.key for n in neighbours if n.key is not None and n.confidence >= SMOOTH_BELOW}
        if len(keys) == 1:
            (key,) = keys
            if key == att.key or key in _candidates(spans, words[i]):
                name = next(n.name for n in neighbours if n.key == key)
                out[i] = Attribution(key, name, max(att.confidence, SMOOTH_BELOW))
    return out


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of consecutive words attributed to the same speaker (or all unknown)."""

    words: list[WordTiming]
    speaker: str | None
    confidence: float  # the mean of its words'


def split_by_speaker(
    words: list[WordTiming], attributions: list[Attribution], min_confidence: float
) -> list[Piece]:
    """Consecutive words grouped by speaker; a word below ``min_confidence`` is unknown (None)."""
    pieces: list[tuple[str | None, str | None, list[WordTiming], list[float]]] = []
    for word, att in zip(words, attributions, strict=True):
        known = att.key is not None and att.confidence >= min_confidence
        key, name = (att.key, att.name) if known else (None, None)
        if pieces and pieces[-1][0] == key:
            pieces[-1][2].append(word)
            pieces[-1][3].append(att.confidence)
        else:
            pieces.append((key, name, [word], [att.confidence]))
    return [Piece(ws, name, sum(cs) / len(cs)) for _, name, ws, cs in pieces]


def majority(attributions: list[Attribution], words: list[WordTiming], min_confidence: float) -> Attribution:
    """The speaker of most of the words' time (for a segment that is not split, e.g. a draft)."""
    weight: dict[str | None, float] = {}
    names: dict[str | None, str | None] = {}
    conf: dict[str | None, list[float]] = {}
    for word, att in zip(words, attributions, strict=True):
        key = att.key if att.key is not None and att.confidence >= min_confidence else None
        weight[key] = weight.get(key, 0.0) + max(word.end - word.start, 0.01)
        names.setdefault(key, att.name if key is not None else None)
        conf.setdefault(key, []).append(att.confidence)
    if not weight:
        return Attribution(None, None, 0.0)
    key = max(weight, key=lambda k: (weight[k], k is not None))
    return Attribution(key, names[key], sum(conf[key]) / len(conf[key]))


@dataclass(frozen=True, slots=True)
class Part:
    """One segment as it will be stored: the whole segment, or one speaker's run of it."""

    start: float
    end: float
    text: str
    words: list[WordTiming]
    speaker: str | None
    status: str
    confidence: float | None


def attribute_segment(
    events: list[TimedEvent],
    start: float,
    end: float,
    text: str,
    words: list[WordTiming],
    *,
    split: bool,
    min_confidence: float,
) -> list[Part]:
    """A segment with word timings, attributed word by word; split at speaker changes when ``split``.

    Only completed segments are split: a draft's words still move, and pieces of a draft
    would be left behind in the transcript when the next draft splits differently. The
    first piece keeps the segment's start, so it replaces the draft stored under it.
    """
    if not events:
        return [Part(start, end, text, words, None, NO_EVENTS, None)]
    attributions = attribute_words(events, words)
    if not split:
        best = majority(attributions, words, min_confidence)
        return [Part(start, end, text, words, best.name, _status(best.name), round(best.confidence, 3))]
    pieces = split_by_speaker(words, attributions, min_confidence)
    parts = []
    for i, piece in enumerate(pieces):
        p_start = start if i == 0 else piece.words[0].start
        p_end = end if i == len(pieces) - 1 else max(p_start, piece.words[-1].end)
        p_text = "".join(w.word for w in piece.words).strip()
        parts.append(
            Part(
                p_start,
                p_end,
                p_text,
                piece.words,
                piece.speaker,
                _status(piece.speaker),
                round(piece.confidence, 3),
            )
        )
    return parts


def _status(speaker: str | None) -> str:
    return MAPPED if speaker is not None else UNKNOWN


def attribute(seg: StoredSegment, events: list[TimedEvent], min_confidence: float) -> list[StoredSegment]:
    """A stored segment without a speaker of its own, attributed from the session's speaker events.

    With word timings: per word (a completed segment split at speaker changes); without
    (an upstream producer): the whole segment by its overlap with the speaking intervals.
    """
    if not seg.words:
        speaker, status = map_speaker(events, seg.start, seg.end_time)
        return [seg.model_copy(update={"speaker": speaker, "speaker_mapping_status": status})]
    words = [WordTiming(a, b, text) for a, b, text in seg.words]
    parts = attribute_segment(
        events, seg.start, seg.end_time, seg.text, words, split=seg.completed, min_confidence=min_confidence
    )
    out = [
        seg.model_copy(
            update={
                "start": p.start,
                "end_time": p.end,
                "text": p.text,
                "words": [(w.start, w.end, w.word) for w in p.words],
                "speaker": p.speaker,
                "speaker_mapping_status": p.status,
                "speaker_confidence": p.confidence,
                "split_from": seg.start if seg.completed else None,
                "pieces": None,
            }
        )
        for p in parts
    ]
    if seg.completed:
        # The first piece keeps the segment's field and names the others: a revision of the
        # segment replaces that field and, with it, this split (segments.py, rows.py).
        out[0].pieces = [piece.field for piece in out[1:]]
    return out


def resplit(
    pieces: list[StoredSegment], events: list[TimedEvent], min_confidence: float
) -> list[StoredSegment]:
    """A split segment's pieces joined again and split anew (speaker events may have come since)."""
    ordered = sorted(pieces, key=lambda s: s.start)
    head = ordered[0]
    whole = head.model_copy(
        update={
            "end_time": max(s.end_time for s in ordered),
            "text": " ".join(s.text for s in ordered if s.text),
            "words": [w for s in ordered for w in s.words or []],
            "completed": True,
        }
    )
    return attribute(whole, events, min_confidence)
