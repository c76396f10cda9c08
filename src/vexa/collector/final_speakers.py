"""Speakers of a mixed track's final transcript, attributed word by word as the live path does.

The offline decode of a mixed track (Teams, Zoom web) gives words with timings on
the recording's timeline, and the bot recorded the page's speaker events on the same
timeline (``vexa.recordings.speaker_log``). Each word is scored against the speakers'
intervals by ``vexa.collector.attribution`` (the live path's code) and a segment is
split where its speaker changes; words attributed with less than the collector's
``SPEAKER_MIN_CONFIDENCE`` stay unknown (speaker null) rather than guessed.
"""

from __future__ import annotations

from typing import Any

from vexa.collector.attribution import WordTiming, attribute_segment
from vexa.collector.speakers import map_speaker, parse_events


def attribute_final(
    segments: list[dict[str, Any]], speaker_log: list[tuple[str, float]], min_confidence: float
) -> list[dict[str, Any]]:
    """Offline segments (``start, end, text, language, words``) -> segments with ``speaker``, split."""
    events = parse_events(speaker_log)
    out: list[dict[str, Any]] = []
    for seg in segments:
        words = [WordTiming(a, b, w) for a, b, w in seg.get("words") or []]
        if not words:  # Whisper gave no word timings: the whole segment by its overlap
            speaker, _ = map_speaker(events, seg["start"], seg["end"])
            out.append({**seg, "speaker": speaker})
            continue
        parts = attribute_segment(
            events, seg["start"], seg["end"], seg["text"], words, split=True, min_confidence=min_confidence
        )
        out += [
            {
                "start": p.start,
                "end": p.end,
                "text": p.text,
                "language": seg.get("language"),
                "speaker": p.speaker,
            }
            for p in parts
            if p.text
        ]
    return out
