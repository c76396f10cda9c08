"""Webhooks: signed with HMAC-SHA256, retried after failures, delivered off the request path.

The receiver is a STAND-IN for the user's webhook server: a tiny FastAPI app
on 127.0.0.1 that answers 500 to its first request, then 200.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest
from bot_manager_helpers import serve_app, wait_for, wait_status
from fastapi import FastAPI, Request, Response
from sqlalchemy import text

from vexa.bot_manager.webhooks import WEBHOOK_DEAD_KEY, WEBHOOK_QUEUE_KEY, WebhookDispatcher, sign

pytestmark = pytest.mark.timeout(120)
SECRET = "test-webhook-secret"


def receiver_standin(fail_first: int) -> tuple[FastAPI, list[dict]]:
    received: list[dict] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        received.append({"headers": dict(request.headers), "body": body})
        return Response(status_code=500 if len(received) <= fail_first else 200)

    return app, received


async def _set_webhook(db, user_id: int, url: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE users SET data = jsonb_set(data, '{webhook_url}', to_jsonb(CAST(:u AS text)))"
                " WHERE id = :id"
            ),
            {"u": url, "id": user_id},
        )


async def test_status_webhooks_signed_and_retried(start_manager, make_user, db):
    user_id, token = await make_user()
    app, received = receiver_standin(fail_first=1)
    async with serve_app(app) as hook_base:
        await _set_webhook(db, user_id, f"{hook_base}/hook")
        async with start_manager() as client:
            resp = await client.post(
                "/bots",
                json={"platform": "google_meet", "native_meeting_id": "abc-defg-hij"},
                headers={"X-API-Key": token},
            )
            assert resp.status_code == 201
            mid = resp.json()["id"]
            await wait_status(db, mid, "active")
            await client.delete("/bots/google_meet/abc-defg-hij", headers={"X-API-Key": token})
            await wait_status(db, mid, "completed")

            def statuses() -> list[str]:
                return [json.loads(r["body"])["status"] for r in received]

            async def all_delivered() -> bool:
                ok = [s for i, s in enumerate(statuses()) if i > 0]  # the first answer was a 500
                return {
                    "requested",
                    "joining",
                    "awaiting_admission",
                    "active",
                    "stopping",
                    "completed",
                } <= set(ok)

            await wait_for(all_delivered, limit_s=20, what="all webhooks")

    # The first delivery failed with 500 and was retried with the same body and delivery id.
    first, retry = (
        received[0],
        next(
            r
            for r in received[1:]
            if r["headers"]["x-vexa-delivery"] == received[0]["headers"]["x-vexa-delivery"]
        ),
    )
    assert first["body"] == retry["body"]
    for r in received:
        h = r["headers"]
        expected = "sha256=" + hmac.new(SECRET.encode(), r["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(h["x-vexa-signature"], expected)
        assert h["content-type"] == "application/json" and h["x-vexa-timestamp"].isdigit()
        payload = json.loads(r["body"])
        assert payload["id"] == mid and payload["user_id"] == user_id and payload["platform"] == "google_meet"
        assert "callback_token_hash" not in payload["data"]
        assert h["x-vexa-event"] == (
            "meeting.completed" if payload["status"] == "completed" else "meeting.status"
        )
    final = next(json.loads(r["body"]) for r in received if json.loads(r["body"])["status"] == "completed")
    assert final["data"]["completion_reason"] == "stopped" and final["end_time"] is not None


async def test_dispatcher_gives_up_after_max_attempts(redis):
    app, received = receiver_standin(fail_first=100)
    async with serve_app(app) as base:
        dispatcher = WebhookDispatcher(
            redis, secret="k", max_attempts=3, retry_base_s=0.05, poll_interval_s=0.05
        )
        worker = asyncio.create_task(dispatcher.run())
        try:
            await dispatcher.enqueue(f"{base}/hook?secret=abc", "meeting.status", {"id": 1})
            dead = await wait_for(lambda: redis.lrange(WEBHOOK_DEAD_KEY, 0, -1), what="dead letter")
        finally:
            await dispatcher.close()
        assert worker.done()
    assert len(received) == 3  # bounded attempts
    job = json.loads(dead[0])
    assert job["attempt"] == 3 and job["last_error"] == "HTTP 500"
    assert await redis.zcard(WEBHOOK_QUEUE_KEY) == 0
    assert received[0]["headers"]["x-vexa-signature"] == sign("k", b'{"id":1}')
