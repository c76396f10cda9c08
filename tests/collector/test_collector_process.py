"""The collector as a real process (`vexa serve collector`): a SIGKILL loses nothing."""

from __future__ import annotations

import asyncio

import httpx
from collector_helpers import STREAM, T0, count_rows, insert_meeting, push, session_start, transcription

from vexa.collector.segments import segments_key
from vexa.embedded import free_port
from vexa.streams import Segment
from vexa.testing.processes import ServiceProcess

FAST = {
    "REDIS_STREAM_BLOCK_MS": "100",
    "REDIS_STREAM_READ_COUNT": "3",
    "PENDING_MSG_TIMEOUT_MS": "300",
    "PENDING_CLAIM_INTERVAL_S": "0.3",
    "BACKGROUND_TASK_INTERVAL": "0.2",
    "IMMUTABILITY_THRESHOLD": "0.5",
}


async def test_killed_collector_loses_nothing(service_env, tmp_path, db, redis, make_user):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    await redis.xgroup_create(STREAM, "collector_group", id="0", mkstream=True)
    await push(redis, session_start(token, "s1", T0))
    n = 40
    for i in range(n):
        seg = Segment(start=i, end=i + 0.8, text=f"Sentence {i} about the quarterly plan.", completed=True)
        await push(redis, transcription(token, "s1", [seg]))
    # A collector that read the first messages and died before acknowledging them.
    await redis.xreadgroup("collector_group", "dead-before-us", {STREAM: ">"}, count=5)

    env = {**service_env, **FAST}
    first = ServiceProcess("collector", free_port(), env, log_path=tmp_path / "collector-1.log").start()
    try:
        await asyncio.sleep(0.05)
    finally:
        first.kill()  # SIGKILL, wherever it was
    second = ServiceProcess("collector", free_port(), env, log_path=tmp_path / "collector-2.log").start()
    try:
        body: dict = {}
        async with httpx.AsyncClient(base_url=second.base_url, timeout=5) as client:
            for _ in range(150):  # bounded: ~30 s
                resp = await client.get("/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": token})
                body = resp.json()
                done = len(body["segments"]) == n and all(s["completed"] for s in body["segments"])
                if done and await count_rows(db, meeting_id) == n:
                    break
                await asyncio.sleep(0.2)
            health = await client.get("/health")
        assert health.status_code == 200
    finally:
        second.stop()
    assert [s["start"] for s in body["segments"]] == [float(i) for i in range(n)]
    assert await count_rows(db, meeting_id) == n  # every segment exactly once
    assert body["segments"][3]["absolute_start_time"].startswith("2026-01-05T10:00:03")
    assert (await redis.xpending(STREAM, "collector_group"))["pending"] == 0
    assert await redis.hlen(segments_key(meeting_id)) == 0
    # uvicorn re-raises SIGTERM after a graceful shutdown, hence -15 rather than 0.
    assert second.proc is not None and second.proc.returncode in (0, -15)
    assert "Application shutdown complete" in (tmp_path / "collector-2.log").read_text()
