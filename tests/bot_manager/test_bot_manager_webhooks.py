"""Per-user webhooks through the real bot-manager, PostgreSQL and Valkey.

The receiver is a STAND-IN for the user's webhook server (vexa.testing.webhook_receiver)
on 127.0.0.1: it verifies every delivery with the ``standardwebhooks`` package and
de-duplicates on ``webhook-id``, as the README tells integrators to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from contextlib import asynccontextmanager

import httpx
import pytest
from bot_manager_helpers import standin_command, wait_for, wait_status
from standardwebhooks import WebhookVerificationError

from vexa.testing.asgi import serve_app
from vexa.testing.webhook_receiver import WebhookReceiverStandIn
from vexa.webhooks import config, deliveries
from vexa.webhooks.emit import DEAD_KEY, QUEUE_KEY, WebhookEmitter
from vexa.webhooks.signing import signature_headers
from vexa.webhooks.ssrf import resolve_target
from vexa.webhooks.worker import WebhookWorker

pytestmark = pytest.mark.timeout(120)
HDR = "X-API-Key"


async def _configure(db, user_id: int, url: str, events=None, secret=None) -> str:
    """What PUT /user/webhook stores (the admin-api route calls this same function)."""
    async with db.sessionmaker() as session:
        _, shown = await config.save(session, user_id, url, events, secret)
    return shown


@asynccontextmanager
async def _worker(db, redis, **kwargs):
    worker = WebhookWorker(redis, db.sessionmaker, poll_interval_s=0.05, **kwargs)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.close()
        assert task.done()


async def _log(redis, user_id: int) -> list[dict]:
    return await deliveries.recent(redis, user_id, 100)


async def test_default_is_completed_only_signed_with_standard_webhooks(start_manager, make_user, db, redis):
    user_id, token = await make_user()
    receiver = WebhookReceiverStandIn()
    async with serve_app(receiver.app) as base:
        secret = await _configure(db, user_id, f"{base}/hook?receiver-token=abc")
        receiver.secret = secret
        assert secret.startswith("whsec_")
        async with start_manager() as client:
            resp = await client.post(
                "/bots",
                json={"platform": "google_meet", "native_meeting_id": "abc-defg-hij"},
                headers={HDR: token},
            )
            mid = resp.json()["id"]
            await wait_status(db, mid, "active")
            await client.delete("/bots/google_meet/abc-defg-hij", headers={HDR: token})
            await wait_status(db, mid, "completed")
            await wait_for(lambda: _async(receiver.processed), what="the completed webhook")
            await asyncio.sleep(1.0)  # nothing else may follow: the other events are opt-in

    assert receiver.events() == ["meeting.completed"]
    delivery = receiver.received[-1]
    assert delivery.status == 200
    payload = receiver.processed[0]
    assert payload["event_id"] == delivery.headers["webhook-id"] and payload["event_id"].startswith("evt_")
    assert payload["api_version"] == "2026-03-01"
    meeting = payload["data"]["meeting"]
    assert meeting["id"] == mid and meeting["user_id"] == user_id and meeting["status"] == "completed"
    assert meeting["completion_reason"] == "stopped" and "callback_token_hash" not in meeting["data"]
    # Upstream's own signature header covers "timestamp.body" with the same secret.
    ts = delivery.headers["x-webhook-timestamp"]
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["x-webhook-signature"] == f"sha256={expected}"
    assert "authorization" not in delivery.headers  # the secret itself never travels

    # An altered body, a refreshed timestamp on a captured delivery, and a stale one are all refused.
    headers = {k: v for k, v in delivery.headers.items() if k.startswith("webhook-")}
    with pytest.raises(WebhookVerificationError):
        receiver.verify(delivery.body.replace(b'"completed"', b'"failed"'), headers)
    with pytest.raises(WebhookVerificationError):
        receiver.verify(delivery.body, {**headers, "webhook-timestamp": str(int(time.time()) + 1)})
    stale = signature_headers(secret, headers["webhook-id"], delivery.body, timestamp=int(time.time()) - 600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        receiver.verify(delivery.body, stale)
    # The same delivery replayed to the receiver is acknowledged but not processed twice.
    async with serve_app(receiver.app) as again, httpx.AsyncClient() as http:
        replay = await http.post(f"{again}/hook", content=delivery.body, headers=headers)
    assert replay.status_code == 200 and receiver.events() == ["meeting.completed"]
    log = await _log(redis, user_id)
    assert log[0]["outcome"] == "delivered" and log[0]["status_code"] == 200
    assert log[0]["target_host"] == "127.0.0.1" and "receiver-token" not in json.dumps(log)


async def _async(value):
    return value


async def test_opt_in_events_and_failure_reason(start_manager, make_user, db):
    user_id, token = await make_user()
    receiver = WebhookReceiverStandIn()
    async with serve_app(receiver.app) as base:
        receiver.secret = await _configure(
            db,
            user_id,
            f"{base}/hook",
            {"meeting.status_change": True, "meeting.started": True, "bot.failed": True},
        )
        async with start_manager(BOT_COMMAND=standin_command("crash")) as client:
            resp = await client.post(
                "/bots", json={"platform": "zoom", "native_meeting_id": "555666777"}, headers={HDR: token}
            )
            mid = resp.json()["id"]
            await wait_status(db, mid, "failed")
            await wait_for(lambda: _async("bot.failed" in receiver.events()), what="bot.failed")
            await wait_for(
                lambda: _async(receiver.events().count("meeting.status_change") == 3), what="changes"
            )
    events = receiver.events()
    assert sorted(set(events)) == ["bot.failed", "meeting.completed", "meeting.status_change"]
    changes = [
        p["data"]["status_change"] for p in receiver.processed if p["event_type"] == "meeting.status_change"
    ]
    # Deliveries run concurrently, so they may arrive in any order (status_change.timestamp orders them).
    assert {(c["from"], c["to"]) for c in changes} == {
        (None, "requested"),
        ("requested", "joining"),
        ("joining", "failed"),
    }
    failed = next(p for p in receiver.processed if p["event_type"] == "bot.failed")["data"]
    assert failed["meeting"]["failure_stage"] == "joining"
    assert (
        failed["meeting"]["data"]["error_details"] == "the bot process exited (code 3) without a final status"
    )
    assert failed["status_change"]["reason"] == "bot_crashed"
    # Every event of the meeting has its own stable id.
    assert len({p["event_id"] for p in receiver.processed}) == len(receiver.processed)


async def test_retries_with_backoff_and_the_delivery_log(db, redis, make_user):
    """Another service emits transcription.ready (opt-in); the receiver fails twice, then accepts."""
    user_id, _ = await make_user()
    receiver = WebhookReceiverStandIn(fail_first=2)
    async with serve_app(receiver.app) as base:
        receiver.secret = await _configure(db, user_id, f"{base}/hook", {"transcription.ready": True})
        emitter = WebhookEmitter(redis, db.sessionmaker)
        async with _worker(db, redis, allow_private=True, retry_base_s=0.2):
            ident = await emitter.emit(user_id, "transcript.ready", {"meeting_id": 7}, key="meeting:7")
            assert ident is not None
            assert (
                await emitter.emit(user_id, "transcription.ready", {"meeting_id": 7}, key="meeting:7")
                == ident
            )
            assert (
                await emitter.emit(user_id, "recording.ready", {"meeting_id": 7}, key="m:7") is None
            )  # not chosen
            await wait_for(lambda: _async(receiver.processed), what="delivery after retries")
    assert [r.status for r in receiver.received] == [500, 500, 200]
    assert {r.headers["webhook-id"] for r in receiver.received} == {ident}  # one event, three attempts
    assert receiver.processed[0]["data"] == {"meeting_id": 7}
    log = await _log(redis, user_id)
    assert [(e["outcome"], e["attempt"], e["status_code"]) for e in reversed(log)] == [
        ("retrying", 1, 500),
        ("retrying", 2, 500),
        ("delivered", 3, 200),
    ]
    assert log[-1]["next_attempt_at"] and log[-1]["error"] == "HTTP 500"
    assert await redis.zcard(QUEUE_KEY) == 0


async def test_gives_up_after_the_retry_window_and_does_not_retry_client_errors(db, redis, make_user):
    user_id, _ = await make_user()
    failing = WebhookReceiverStandIn(fail_first=1000)
    async with serve_app(failing.app) as base:
        await _configure(db, user_id, f"{base}/hook", {"bot.failed": True})
        async with _worker(db, redis, allow_private=True, retry_base_s=0.1, retry_for_s=0.5):
            await WebhookEmitter(redis, db.sessionmaker).emit(user_id, "bot.failed", {"x": 1}, key="k")
            dead = await wait_for(lambda: redis.lrange(DEAD_KEY, 0, -1), what="dead letter")
    job = json.loads(dead[0])
    assert job["last_error"] == "HTTP 500" and 2 <= job["attempt"] <= 4 and "url" not in job
    assert (await _log(redis, user_id))[0]["outcome"] == "failed"

    refusing = WebhookReceiverStandIn(answer=410)
    other, _ = await make_user()
    async with serve_app(refusing.app) as base:
        await _configure(db, other, f"{base}/hook")
        async with _worker(db, redis, allow_private=True, retry_base_s=0.05):
            await WebhookEmitter(redis, db.sessionmaker).emit(other, "meeting.completed", {"x": 1}, key="k")
            await wait_for(lambda: _log(redis, other), what="the refused attempt")
            await asyncio.sleep(0.5)
    assert len(refusing.received) == 1  # a 4xx other than 408/425/429 is not retried
    assert [e["outcome"] for e in await _log(redis, other)] == ["failed"]


async def test_send_time_guard_refuses_private_addresses_and_pins_the_resolved_one(db, redis, make_user):
    user_id, _ = await make_user()
    receiver = WebhookReceiverStandIn()
    async with serve_app(receiver.app) as base:
        port = base.rsplit(":", 1)[1]
        # A URL stored without the PUT check (e.g. by an admin editing users.data) is still refused.
        await _configure(db, user_id, f"{base}/hook")
        async with _worker(db, redis, allow_private=False):
            await WebhookEmitter(redis, db.sessionmaker).emit(user_id, "meeting.completed", {}, key="a")
            entry = (await wait_for(lambda: _log(redis, user_id), what="blocked attempt"))[0]
        assert entry["outcome"] == "blocked" and "loopback" in entry["error"]
        assert receiver.received == []

        # DNS rebinding: the name answers a public address when checked, then a private one.
        answers = iter([["93.184.215.14"], ["127.0.0.1"]])

        async def flipping(host: str, port: int) -> list[str]:
            return next(answers)

        assert (
            await resolve_target(f"http://hooks.rebind.test:{port}/", allow_private=False, resolver=flipping)
        ).address
        await _configure(db, user_id, f"http://hooks.rebind.test:{port}/hook")
        async with _worker(db, redis, allow_private=False, resolver=flipping):
            await WebhookEmitter(redis, db.sessionmaker).emit(user_id, "meeting.completed", {}, key="b")
            await wait_for(lambda: _log_count(redis, user_id, 2), what="second blocked attempt")
        assert (await _log(redis, user_id))[0]["outcome"] == "blocked" and receiver.received == []

        # With the operator's allowance the name is resolved once and the request goes to that
        # address (the name exists in no DNS: reaching the receiver proves the pin), Host kept.
        async def fixed(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        async with _worker(db, redis, allow_private=True, resolver=fixed):
            await WebhookEmitter(redis, db.sessionmaker).emit(user_id, "meeting.completed", {}, key="c")
            await wait_for(lambda: _async(receiver.received), what="pinned delivery")
    assert receiver.received[0].headers["host"] == f"hooks.rebind.test:{port}"


async def _log_count(redis, user_id: int, n: int) -> bool:
    return len(await _log(redis, user_id)) >= n


async def test_a_job_claimed_by_a_worker_that_died_is_delivered_by_another(db, redis, make_user):
    """At least once: a claim is a lease, so a worker killed mid-attempt does not lose the event."""
    user_id, _ = await make_user()
    receiver = WebhookReceiverStandIn()
    async with serve_app(receiver.app) as base:
        receiver.secret = await _configure(db, user_id, f"{base}/hook")
        ident = await WebhookEmitter(redis, db.sessionmaker).emit(
            user_id, "meeting.completed", {"n": 1}, key="k"
        )
        dead = WebhookWorker(redis, db.sessionmaker, allow_private=True)
        dead.lease_s = 0.5
        assert len(await dead._claim_due()) == 1  # claimed, then "killed" before any attempt
        async with _worker(db, redis, allow_private=True):
            await asyncio.sleep(0.3)
            assert receiver.received == []  # the lease still holds
            await wait_for(lambda: _async(receiver.processed), what="redelivery after the lease")
    assert [p["event_id"] for p in receiver.processed] == [ident]
