"""Prometheus metrics of the transcription-collector (``GET /metrics`` on its port).

Latency and counts move where the work happens; stream lag, pending and dead-letter lengths
are read from Redis at scrape time (``refresh``), so they are the group's truth shared by every
collector replica, not one process's view.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from fastapi import Request
from prometheus_client import Counter, Gauge, Histogram

from vexa.collector.segments import StoredSegment
from vexa.collector.trimming import measure
from vexa.metrics import LATENCY_BUCKETS

PERSIST_LATENCY = Histogram(
    "vexa_collector_persist_latency_seconds",
    "From the segment's XADD (its stream entry id) to its row committed in PostgreSQL; includes "
    "IMMUTABILITY_THRESHOLD, the wait for a segment to settle.",
    buckets=LATENCY_BUCKETS,
)
SEGMENTS_PERSISTED = Counter("vexa_collector_segments_persisted_total", "Segment rows written to PostgreSQL.")
STREAM_LENGTH = Gauge("vexa_collector_stream_length", "Entries in the stream.", ["stream"])
STREAM_LAG = Gauge(
    "vexa_collector_stream_lag", "Entries not yet delivered to the slowest consumer group.", ["stream"]
)
STREAM_PENDING = Gauge(
    "vexa_collector_stream_pending", "Entries delivered but not yet acknowledged.", ["stream"]
)
DEAD_LETTERS = Gauge("vexa_collector_dead_letters", "Entries in the dead-letter stream (XLEN).", ["stream"])

REDIS_TIMEOUT_S = 2.0


def observe_persisted(segments: Iterable[StoredSegment]) -> None:
    """Latency from each segment's XADD (the ms part of its entry id, its ``version``) to now."""
    now_ms = time.time() * 1000
    count = 0
    for seg in segments:
        count += 1
        head = seg.version.split("-", 1)[0]
        if head.isdigit():
            PERSIST_LATENCY.observe(max(0.0, (now_ms - int(head)) / 1000))
    SEGMENTS_PERSISTED.inc(count)


async def refresh(request: Request) -> None:
    """Read each stream's length, lag and pending count, and each dead-letter stream's length."""
    redis = request.app.state.redis
    settings = request.app.state.settings
    for stream in request.app.state.collector.trimmer.streams:
        lag = await asyncio.wait_for(measure(redis, stream), REDIS_TIMEOUT_S)
        STREAM_LENGTH.labels(stream).set(lag.length)
        STREAM_PENDING.labels(stream).set(lag.pending)
        if lag.lag is not None:
            STREAM_LAG.labels(stream).set(lag.lag)
    for dead in (settings.dead_letter_stream, settings.speaker_dead_letter_stream):
        DEAD_LETTERS.labels(dead).set(await asyncio.wait_for(redis.xlen(dead), REDIS_TIMEOUT_S))
