"""The gateway's Prometheus metrics: on the internal metrics port, not on the public API port.

A second gateway process with GATEWAY_METRICS_PORT set; subscriptions and slow-client drops
are read back from /metrics after they happen.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_helpers import ClosedPort, start_gateway  # type: ignore[import-not-found]
from prometheus_client.parser import text_string_to_metric_families
from test_gateway_ws import MEET, insert_meeting, recv_json, ws_url  # type: ignore[import-not-found]
from websockets.asyncio.client import connect

from vexa.embedded import free_port
from vexa.events import publish_event
from vexa.testing.processes import ServiceProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def metered_gateway(
    service_env: dict[str, str], admin_service: ServiceProcess, tmp_session_dir: Path
) -> Iterator[tuple[ServiceProcess, int]]:
    closed = [ClosedPort(), ClosedPort()]
    metrics_port = free_port()
    proc = start_gateway(
        service_env,
        tmp_session_dir / "logs" / "gateway-metrics.log",
        ADMIN_API_URL=admin_service.base_url,
        BOT_MANAGER_URL=closed[0].url,
        TRANSCRIPTION_COLLECTOR_URL=closed[1].url,
        WS_QUEUE_SIZE="4",
        GATEWAY_METRICS_PORT=str(metrics_port),
    )
    try:
        yield proc, metrics_port
    finally:
        proc.stop()
        for port in closed:
            port.close()


def scrape(port: int) -> dict[str, float]:
    """Every sample of the exposition, by name (labels are not used by the gateway's metrics)."""
    resp = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert resp.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(resp.text)
        for sample in family.samples
    }


async def test_metrics_are_not_on_the_public_port(metered_gateway):
    gateway, _ = metered_gateway
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{gateway.base_url}/metrics")
    assert resp.status_code == 404
    assert "vexa_gateway" not in resp.text


async def test_subscriptions_and_slow_client_drops_are_counted(metered_gateway, make_user, db, redis):
    gateway, port = metered_gateway
    before = await asyncio.to_thread(scrape, port)
    assert {"vexa_gateway_ws_subscriptions", "vexa_gateway_ws_dropped_total"} <= before.keys()
    assert "process_resident_memory_bytes" in before
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    slow = await connect(ws_url(gateway, token), max_size=None, max_queue=1)
    try:
        await slow.send(json.dumps({"action": "subscribe", "meetings": [MEET]}))
        assert (await recv_json(slow))["type"] == "subscribed"
        during = await asyncio.to_thread(scrape, port)
        assert during["vexa_gateway_ws_subscriptions"] == before["vexa_gateway_ws_subscriptions"] + 1
        assert during["vexa_gateway_ws_channels"] >= 1

        # The client stops reading; incompressible events fill its socket and its 4-message queue.
        big = {
            "segments": [{"start": 0.0, "end": 1.0, "text": base64.b64encode(os.urandom(150_000)).decode()}]
        }
        for i in range(120):
            big["segments"][0]["start"] = float(i)
            await publish_event(redis, "transcript.mutable", meeting_id, "google_meet", "abc-defg-hij", big)
            await asyncio.sleep(0.002)
        after = before
        for _ in range(50):  # bounded wait for the hub to reach the full queue
            after = await asyncio.to_thread(scrape, port)
            if after["vexa_gateway_ws_dropped_total"] > before["vexa_gateway_ws_dropped_total"]:
                break
            await asyncio.sleep(0.1)
        assert after["vexa_gateway_ws_dropped_total"] == before["vexa_gateway_ws_dropped_total"] + 1
        assert after["vexa_gateway_ws_delivered_total"] > before["vexa_gateway_ws_delivered_total"]
        assert after["vexa_gateway_ws_subscriptions"] == before["vexa_gateway_ws_subscriptions"]
    finally:
        await slow.close()
