"""Who spoke and in which languages, read back from the transcript at meeting end.

Both stores are read because at the moment a meeting ends the collector may
not yet have flushed the last segments from Redis (``meeting:{id}:segments``)
into the ``transcriptions`` table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vexa.db.models import Transcription
from vexa.keys import segments_key

log = logging.getLogger(__name__)


def merge_unique(existing: Iterable[str] | None, new: Iterable[str | None]) -> list[str]:
    """``existing`` first (user-set values are kept, in their order), then unseen new ones."""
    out: list[str] = []
    seen: set[str] = set()
    for value in [*(existing or []), *new]:
        if isinstance(value, str):
            value = value.strip()
        if value and isinstance(value, str) and value not in seen:
            seen.add(value)
            out.append(value)
    return out


async def transcript_speakers_and_languages(
    session: AsyncSession, redis: Redis, meeting_id: int
) -> tuple[list[str], list[str]]:
    """(speakers, languages) in order of first appearance."""
    speakers: list[tuple[float, str]] = []
    languages: list[tuple[float, str]] = []
    rows = await session.execute(
        select(Transcription.speaker, func.min(Transcription.start_time))
        .where(Transcription.meeting_id == meeting_id, Transcription.speaker.is_not(None))
        .group_by(Transcription.speaker)
    )
    speakers += [(start, name) for name, start in rows]
    rows = await session.execute(
        select(Transcription.language, func.min(Transcription.start_time))
        .where(Transcription.meeting_id == meeting_id, Transcription.language.is_not(None))
        .group_by(Transcription.language)
    )
    languages += [(start, lang) for lang, start in rows]
    try:
        cached = await redis.hvals(segments_key(meeting_id))
    except RedisError:
        log.warning("could not read live segments of meeting %s", meeting_id)
        cached = []
    for raw in cached:
        try:
            seg = json.loads(raw)
            start = float(seg.get("start", 0.0))
        except (TypeError, ValueError, AttributeError):
            continue
        if seg.get("speaker"):
            speakers.append((start, str(seg["speaker"])))
        if seg.get("language"):
            languages.append((start, str(seg["language"])))
    speakers.sort(key=lambda p: p[0])
    languages.sort(key=lambda p: p[0])
    return merge_unique([], (s for _, s in speakers)), merge_unique([], (lang for _, lang in languages))
