"""The bot-manager's /metrics: bots by status (from PostgreSQL) and webhook deliveries by result."""

from __future__ import annotations

import pytest
from bot_manager_helpers import wait_for, wait_status
from prometheus_client.parser import text_string_to_metric_families

from vexa.testing.asgi import serve_app
from vexa.testing.webhook_receiver import WebhookReceiverStandIn
from vexa.webhooks import config

pytestmark = pytest.mark.timeout(120)


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def bots(metrics, status: str) -> float:
    return metrics[("vexa_bots", (("status", status),))]


def deliveries(metrics, result: str) -> float:
    return metrics[("vexa_webhook_deliveries_total", (("result", result),))]


async def test_bots_by_status_and_webhook_results_move(start_manager, make_user, db):
    user_id, token = await make_user()
    receiver = WebhookReceiverStandIn(fail_first=1)  # the first delivery gets a 500, then 200s
    received = receiver.received
    async with serve_app(receiver.app) as hook_base:
        async with db.sessionmaker() as session:  # every status change, as PUT /user/webhook stores it
            await config.save(session, user_id, f"{hook_base}/hook", {"meeting.status_change": True}, None)
        async with start_manager() as client:
            before = await scrape(client)
            resp = await client.post(
                "/bots",
                json={"platform": "google_meet", "native_meeting_id": "mno-pqrs-tuv"},
                headers={"X-API-Key": token},
            )
            assert resp.status_code == 201
            mid = resp.json()["id"]
            await wait_status(db, mid, "active")
            during = await scrape(client)
            assert bots(during, "active") == bots(before, "active") + 1

            async def delivered_some() -> bool:
                return len(received) >= 3

            await wait_for(delivered_some, limit_s=20, what="webhooks")
            await client.delete("/bots/google_meet/mno-pqrs-tuv", headers={"X-API-Key": token})
            await wait_status(db, mid, "completed")
            after = await scrape(client)
    assert bots(after, "active") == bots(before, "active")
    assert deliveries(after, "retrying") >= deliveries(before, "retrying") + 1
    assert deliveries(after, "delivered") >= deliveries(before, "delivered") + 2
    assert deliveries(after, "failed") == deliveries(before, "failed")
