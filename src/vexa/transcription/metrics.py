"""Prometheus metrics of the transcription service (served on its health port: ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from vexa.metrics import LATENCY_BUCKETS

COMMIT_LATENCY = Histogram(
    "vexa_transcription_commit_latency_seconds",
    "From the end of an utterance's audio (as received) to its segment being committed (final).",
    buckets=LATENCY_BUCKETS,
)
SEGMENTS_COMMITTED = Counter("vexa_transcription_segments_committed_total", "Segments committed as final.")
SLOTS_IN_USE = Gauge("vexa_transcription_slots_in_use", "Open transcription sessions (WL_MAX_CLIENTS slots).")
SLOTS_CAPACITY = Gauge("vexa_transcription_slots_capacity", "Session slots of this replica (WL_MAX_CLIENTS).")
SESSIONS_TOTAL = Counter("vexa_transcription_sessions_total", "Sessions accepted since start.")
DECODES_IN_FLIGHT = Gauge("vexa_transcription_decodes_in_flight", "Whisper decodes running now.")
PUBLISH_BACKLOG = Gauge(
    "vexa_transcription_publish_backlog", "Messages waiting to reach Redis (held while Redis is away)."
)
