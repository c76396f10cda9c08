"""The speaker events a bot recorded beside its audio, for the final transcript of a mixed track.

A mixed track (Teams, Zoom web: one stream for everyone) carries no speaker, and
the live copy of the page's speaker events (Redis ``speaker_events:{session}``)
expires after ``SPEAKER_EVENTS_TTL`` and is dated per transcription session. So the
bot's recorder writes the events beside the chunks (``<prefix>/speakers/<seq>.json``,
each event with its wall time), and here they are read back onto the recording's
timeline: milliseconds from its first sample (``tracks.json``'s ``started_at``).
"""

from __future__ import annotations

import json
import logging

from vexa.recordings.storage import RecordingStorage, StorageError

log = logging.getLogger(__name__)


async def load_speaker_log(
    storage: RecordingStorage, prefix: str, started_at: float | None
) -> list[tuple[str, float]]:
    """``(event JSON, ms on the recording's timeline)`` pairs, the shape of the live sorted set's entries."""
    if started_at is None:
        return []
    out: list[tuple[str, float]] = []
    for key in sorted(await storage.list(f"{prefix}/speakers")):
        try:
            events = json.loads(await storage.get(key))
        except (StorageError, ValueError) as exc:  # a torn write of a killed bot: the rest still counts
            log.warning("recording %s: skipping unreadable speaker log %s: %s", prefix, key, exc)
            continue
        for event in events if isinstance(events, list) else []:
            try:
                ms = (float(event["wall"]) - started_at) * 1000.0
            except (KeyError, TypeError, ValueError):
                continue
            out.append((json.dumps(event, sort_keys=True), ms))
    return out
