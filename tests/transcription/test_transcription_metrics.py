"""The transcription service's /metrics (on its health port): slots in use and commit latency move."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_transcription_service import meeting_config  # type: ignore[import-not-found]

from conftest import TEXT_A, Received, Service, open_session, read_all, silence, speech, stream_audio

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.timeout(180)]


def scrape(service: Service) -> dict[str, float]:
    resp = httpx.get(f"http://127.0.0.1:{service.health_port}/metrics", timeout=5)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {s.name: s.value for f in text_string_to_metric_families(resp.text) for s in f.samples}


async def test_slots_and_commit_latency_move(service: Service) -> None:
    before = await asyncio.to_thread(scrape, service)
    assert before["vexa_transcription_slots_capacity"] == 2
    assert before["vexa_transcription_slots_in_use"] == 0

    ws, _ = await open_session(service.ws_url, meeting_config(str(uuid.uuid4()), speaker="Alice"))
    got = Received()
    reader = asyncio.create_task(read_all(ws, got))
    # Real-time pace with a pause after the sentence: the commit comes from the pause, live.
    await stream_audio(ws, np.concatenate([silence(0.3), speech(TEXT_A), silence(2.0)]))
    during = await asyncio.to_thread(scrape, service)
    await ws.send(b"END_OF_AUDIO")
    await asyncio.wait_for(reader, 60)
    await service.wait_idle()
    after = await asyncio.to_thread(scrape, service)

    assert during["vexa_transcription_slots_in_use"] == 1
    assert after["vexa_transcription_slots_in_use"] == 0
    assert after["vexa_transcription_sessions_total"] == before["vexa_transcription_sessions_total"] + 1
    committed = [s for s in got.final_segments() if s["completed"] and s["text"]]
    new = (
        after["vexa_transcription_commit_latency_seconds_count"]
        - (before["vexa_transcription_commit_latency_seconds_count"])
    )
    assert committed and new == len(committed)
    # Live pace: each commit came within seconds of its utterance's end (not minutes, not negative).
    mean = (
        after["vexa_transcription_commit_latency_seconds_sum"]
        - before["vexa_transcription_commit_latency_seconds_sum"]
    ) / new
    assert 0.0 < mean < 15.0
