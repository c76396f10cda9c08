"""Who spoke when: speaker events per session and the segment -> speaker mapping.

The bot reports SPEAKER_START/SPEAKER_END per participant (times relative to the
transcription session's audio offset 0); the collector keeps them per session in
the sorted set ``speaker_events:{session_uid}`` (score = ms) and attributes a
segment to the participant whose speaking intervals overlap it most.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from vexa.streams import SpeakerEvent

MAPPED = "MAPPED"
MULTIPLE = "MULTIPLE_CONCURRENT_SPEAKERS"
NO_EVENTS = "NO_SPEAKER_EVENTS"
UNKNOWN = "UNKNOWN"

# A second speaker "substantially" overlaps when it covers at least this share of the segment.
CONCURRENT_SHARE = 0.3


def speaker_events_key(session_uid: str) -> str:
    return f"speaker_events:{session_uid}"


@dataclass(frozen=True, slots=True)
class TimedEvent:
    ms: float
    kind: str  # SPEAKER_START | SPEAKER_END
    key: str  # participant id when known, else name: two people may share a display name
    name: str


def queue_store(pipe: Pipeline, event: SpeakerEvent, ttl_s: int) -> None:
    """Add ZADD + EXPIRE for one event to a transaction (the caller adds XACK)."""
    member = json.dumps(
        {
            "event_type": event.event_type,
            "participant_name": event.participant_name,
            "participant_id": event.participant_id,
            "relative_timestamp_ms": event.relative_timestamp_ms,
        },
        sort_keys=True,
    )
    key = speaker_events_key(event.uid)
    pipe.zadd(key, {member: event.relative_timestamp_ms})
    pipe.expire(key, ttl_s)


def parse_events(raw: Iterable[tuple[str, float | str]]) -> list[TimedEvent]:
    out: list[TimedEvent] = []
    for member, score in raw:
        try:
            data = json.loads(member)
            name = str(data["participant_name"])
            out.append(
                TimedEvent(
                    float(score), str(data["event_type"]), str(data.get("participant_id") or name), name
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    out.sort(key=lambda e: (e.ms, e.kind != "SPEAKER_END"))  # END before START at the same instant
    return out


async def load_events(redis: Redis, session_uid: str) -> list[TimedEvent]:
    return parse_events(await redis.zrange(speaker_events_key(session_uid), 0, -1, withscores=True))


# Every session's sorted set as one flat [member, score, ...] list: one command for a whole
# batch (a pipeline of one ZRANGE per session cost more in the client than in Redis).
_ZRANGE_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
end
return out
"""


async def load_many(redis: Redis, session_uids: list[str]) -> dict[str, list[TimedEvent]]:
    """The events of several sessions in one round trip (a consumer batch's, a persistence round's)."""
    if not session_uids:
        return {}
    keys = [speaker_events_key(uid) for uid in session_uids]
    results = await redis.eval(_ZRANGE_MANY, len(keys), *keys)
    return {
        uid: parse_events(zip(flat[::2], flat[1::2], strict=True)) if flat else []
        for uid, flat in zip(session_uids, results, strict=True)
    }


def _intervals(events: list[TimedEvent], open_until_ms: float) -> dict[str, list[tuple[float, float]]]:
    """Per participant, closed [start, end] intervals; an open START lasts until ``open_until_ms``."""
    opened: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for ev in events:
        if ev.kind == "SPEAKER_START":
            opened.setdefault(ev.key, ev.ms)
        elif ev.kind == "SPEAKER_END" and ev.key in opened:
            spans.setdefault(ev.key, []).append((opened.pop(ev.key), ev.ms))
    for key, start in opened.items():
        spans.setdefault(key, []).append((start, max(start, open_until_ms)))
    return spans


def map_speaker(events: list[TimedEvent], start_s: float, end_s: float) -> tuple[str | None, str]:
    """(speaker name or None, speaker_mapping_status) for a segment [start_s, end_s] in seconds."""
    if not events:
        return None, NO_EVENTS
    seg_start, seg_end = start_s * 1000.0, max(end_s, start_s) * 1000.0
    names = {ev.key: ev.name for ev in events}
    overlap: dict[str, float] = {}
    for key, spans in _intervals(events, seg_end).items():
        total = 0.0
        for a, b in spans:
            if seg_end == seg_start:  # a zero-length segment: is it inside the interval at all?
                total += 1.0 if a <= seg_start <= b else 0.0
            else:
                total += max(0.0, min(b, seg_end) - max(a, seg_start))
        if total > 0:
            overlap[key] = total
    if not overlap:
        return None, UNKNOWN
    ranked = sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0]))
    best_key = ranked[0][0]
    duration = seg_end - seg_start
    threshold = CONCURRENT_SHARE * duration if duration > 0 else 1.0
    substantial = [k for k, v in ranked if v >= threshold]
    status = MULTIPLE if len(substantial) > 1 else MAPPED
    return names[best_key], status
