"""A meeting's end reason, in words, reaches the API and the webhook, cleaned of secrets and stack traces.

With the REAL bot (Chromium): the meeting host does not resolve, so the bot cannot
open the page; what Chromium says about it must arrive in ``data.error_details``
(upstream's field) and in the ``bot.failed`` webhook, with no stack trace and no secret.
"""

from __future__ import annotations

import json

import pytest
from bot_manager_helpers import default_bot_command_for_tests, standin_command, wait_for, wait_status

from vexa.testing.asgi import serve_app
from vexa.testing.webhook_receiver import WebhookReceiverStandIn
from vexa.webhooks import config

pytestmark = pytest.mark.timeout(180)


@pytest.mark.slow
@pytest.mark.browser
async def test_unresolvable_meeting_host_reason_reaches_api_and_webhook(start_manager, make_user, db):
    user_id, token = await make_user()
    receiver = WebhookReceiverStandIn()
    async with serve_app(receiver.app) as base:
        async with db.sessionmaker() as session:
            _, receiver.secret = await config.save(
                session, user_id, f"{base}/hook", {"bot.failed": True, "meeting.completed": False}, None
            )
        async with start_manager(
            BOT_COMMAND=default_bot_command_for_tests(), MEETING_BASE_URL="http://meeting-host.invalid"
        ) as client:
            resp = await client.post(
                "/bots",
                json={"platform": "google_meet", "native_meeting_id": "abc-defg-hij"},
                headers={"X-API-Key": token},
            )
            assert resp.status_code == 201, resp.text
            meeting = await wait_status(db, resp.json()["id"], "failed", limit_s=90)

            async def delivered() -> bool:
                return bool(receiver.processed)

            await wait_for(delivered, what="the bot.failed webhook")
    reason = "cannot open the meeting page: net::ERR_NAME_NOT_RESOLVED"
    assert meeting.data["completion_reason"] == "join_error"
    assert meeting.data["error_details"].startswith(reason)
    assert "Traceback" not in meeting.data["error_details"] and token not in str(meeting.data)
    assert receiver.events() == ["bot.failed"]
    assert receiver.processed[0]["data"]["meeting"]["data"]["error_details"] == meeting.data["error_details"]


async def test_reported_messages_are_cleaned_before_they_are_stored(start_manager, make_user, db):
    """A bot's message is not trusted: one line, no credentials, no query strings, no tokens."""
    _, token = await make_user()
    async with start_manager(BOT_COMMAND=standin_command("deaf")) as client:
        resp = await client.post(
            "/bots", json={"platform": "zoom", "native_meeting_id": "123456789"}, headers={"X-API-Key": token}
        )
        mid = resp.json()["id"]
        await wait_status(db, mid, "joining")
        standin = json.loads(await client.app.state.manager.redis.get(f"standin:{mid}:config"))
        message = (
            "cannot open the meeting page: net::ERR_CONNECTION_REFUSED at "
            "https://bob:hunter2@zoom.us/j/123456789?pwd=s3cret token=abc123 " + "A" * 40 + "\n"
            'Traceback (most recent call last):\n  File "main.py", line 1'
        )
        done = await client.post(
            "/bots/internal/callback/status",
            json={
                "meeting_id": mid,
                "status": "failed",
                "reason": "join_error",
                "details": {"message": message},
            },
            headers={"X-Bot-Token": standin["bot_token_env"]},
        )
        assert done.status_code == 200, done.text
    meeting = await wait_status(db, mid, "failed")
    assert meeting.data["error_details"] == (
        "cannot open the meeting page: net::ERR_CONNECTION_REFUSED at "
        "https://[redacted]@zoom.us/j/123456789?[redacted] token=[redacted] [redacted]"
    )
