"""Stream publishing survives a Redis outage: buffered in order, bounded, delivered on recovery."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from vexa.embedded import EmbeddedValkey, free_port
from vexa.streams import SessionStartMessage, TranscriptionMessage, parse_payload
from vexa.transcription.publisher import StreamPublisher


def message(i: int) -> TranscriptionMessage:
    return TranscriptionMessage(
        uid="u",
        platform="zoom",
        meeting_id="123",
        token="t",
        segments=[{"start": i, "end": i + 1, "text": f"segment {i}", "completed": True}],
    )


async def test_messages_published_while_redis_is_down_arrive_in_order_later(tmp_path: Path) -> None:
    port = free_port()
    publisher = StreamPublisher(f"redis://127.0.0.1:{port}/0", max_buffered=50)
    publisher.start()
    for i in range(60):  # more than the buffer holds: the oldest 10 are dropped, never the session
        publisher.publish("transcription_segments", message(i))
    await asyncio.sleep(0.5)
    assert not publisher.healthy and publisher.backlog == 50 and publisher.dropped == 10
    server = EmbeddedValkey(tmp_path / "valkey", port=port, persist=False).start()
    try:
        assert await publisher.flush(within_s=15)
        client = Redis.from_url(server.url, decode_responses=True)
        entries = await client.xrange("transcription_segments")
        texts = [parse_payload(f["payload"]).segments[0].text for _, f in entries]  # type: ignore[union-attr]
        assert texts == [f"segment {i}" for i in range(10, 60)]
        assert publisher.healthy
        await client.aclose()
    finally:
        await publisher.close(within_s=1)
        server.stop()


async def test_the_producer_never_trims_the_stream(redis_url: str, redis: Redis) -> None:
    """Trimming is the consumer group's business (vexa.collector.trimming): unread entries stay."""
    publisher = StreamPublisher(redis_url, max_buffered=10_000)
    publisher.start()
    start = SessionStartMessage(
        uid="u", platform="zoom", meeting_id="1", token="t", start_timestamp="2026-01-01T00:00:00Z"
    )
    for _ in range(1000):
        publisher.publish("capped", start)
    assert await publisher.flush(within_s=20)
    await publisher.close()
    assert await redis.xlen("capped") == 1000
