"""`recording_enabled`: per request, else the user's default, else on; the bot is told where to record.

Real bot-manager, PostgreSQL and Redis; the bots are ``vexa.testing.standin_bot`` STAND-INs.
"""

from __future__ import annotations

import json

import pytest
from bot_manager_helpers import standin_command, wait_for, wait_status

from vexa.recordings.jobs import POSTPROCESS_STREAM

pytestmark = pytest.mark.timeout(120)


async def _config(redis, meeting_id: int) -> dict:
    raw = await wait_for(lambda: redis.get(f"standin:{meeting_id}:config"), what="stand-in bot config")
    return json.loads(raw)


async def test_recording_switch_request_user_default_and_service_default(start_manager, make_user, db, redis):
    user_id, token = await make_user(max_concurrent_bots=5)
    headers = {"X-API-Key": token}
    async with start_manager() as client:
        on = await client.post(
            "/bots", json={"platform": "zoom", "native_meeting_id": "1111111111"}, headers=headers
        )
        assert on.status_code == 201, on.text
        [record] = on.json()["data"]["recordings"]
        assert record["status"] == "in_progress" and record["media_files"] == []
        cfg = await _config(redis, on.json()["id"])
        assert cfg["recording_enabled"] is True
        assert cfg["recording_prefix"] == f"{on.json()['id']}/{record['id']}"

        off = await client.post(
            "/bots",
            json={"platform": "zoom", "native_meeting_id": "2222222222", "recording_enabled": False},
            headers=headers,
        )
        assert "recordings" not in off.json()["data"]
        cfg = await _config(redis, off.json()["id"])
        assert cfg["recording_enabled"] is False and cfg["recording_prefix"] is None

        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(
                "UPDATE users SET data = $1::jsonb WHERE id = $2", ('{"recording_enabled": false}', user_id)
            )
        user_off = await client.post(
            "/bots", json={"platform": "zoom", "native_meeting_id": "3333333333"}, headers=headers
        )
        assert "recordings" not in user_off.json()["data"], "the user's default"
        asked = await client.post(
            "/bots",
            json={"platform": "zoom", "native_meeting_id": "4444444444", "recording_enabled": True},
            headers=headers,
        )
        assert len(asked.json()["data"]["recordings"]) == 1, "the request wins over the user's default"


async def test_a_finished_recording_meeting_is_queued_for_post_processing(
    start_manager, make_user, db, redis
):
    _, token = await make_user()
    await redis.delete(POSTPROCESS_STREAM)
    async with start_manager(BOT_COMMAND=standin_command("crash")) as client:
        mid = (
            await client.post(
                "/bots",
                json={"platform": "zoom", "native_meeting_id": "5555555555"},
                headers={"X-API-Key": token},
            )
        ).json()["id"]
        await wait_status(db, mid, "failed")
        entries = await wait_for(lambda: redis.xrange(POSTPROCESS_STREAM), what="a post-processing job")
    assert [int(fields["meeting_id"]) for _, fields in entries] == [mid], "even a crashed bot's chunks"
