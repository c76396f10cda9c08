"""The collector's /metrics: XADD -> persisted latency, stream lag/pending and dead letters move."""

from __future__ import annotations

from collector_helpers import STREAM, T0, insert_meeting, push, session_start, transcription
from prometheus_client.parser import text_string_to_metric_families

from vexa.streams import Segment


async def scrape(harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await harness.client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def stream_value(metrics, name: str, stream: str) -> float:
    return metrics[(name, (("stream", stream),))]


async def test_persist_latency_lag_pending_and_dead_letters_move(harness, db, redis, make_user):
    user_id, token = await make_user()
    await insert_meeting(db, user_id, native="mtr-metr-ics")
    before = await scrape(harness)
    persisted_before = before[("vexa_collector_persist_latency_seconds_count", ())]

    await push(redis, session_start(token, "m1", T0, native="mtr-metr-ics"))
    seg = Segment(start=1.0, end=2.0, text="Metrics are moving now.", language="en")
    await push(redis, transcription(token, "m1", [seg], native="mtr-metr-ics"))
    await redis.xadd(STREAM, {"payload": "{not json"})

    queued = await scrape(harness)  # not read yet: the group's lag shows the two-plus entries
    assert stream_value(queued, "vexa_collector_stream_lag", STREAM) >= 3
    assert stream_value(queued, "vexa_collector_stream_length", STREAM) >= 3

    await harness.drain()
    assert await harness.collector.persister.run_once(force=True) >= 1
    after = await scrape(harness)
    assert stream_value(after, "vexa_collector_stream_lag", STREAM) == 0
    assert stream_value(after, "vexa_collector_stream_pending", STREAM) == 0
    dead = f"{STREAM}:dead"
    assert stream_value(after, "vexa_collector_dead_letters", dead) == (
        stream_value(before, "vexa_collector_dead_letters", dead) + 1
    )
    assert after[("vexa_collector_persist_latency_seconds_count", ())] == persisted_before + 1
    assert after[("vexa_collector_segments_persisted_total", ())] >= 1
    # Persisted within the test: the latency observed is seconds, not the epoch.
    assert after[("vexa_collector_persist_latency_seconds_sum", ())] < (
        before[("vexa_collector_persist_latency_seconds_sum", ())] + 60
    )
