"""Bot-manager lifecycle against real PostgreSQL + Redis, with STAND-IN bot processes.

The bots here are ``vexa.testing.standin_bot`` (a test double for the browser
bot) started by the real process orchestrator; everything else is real.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from bot_manager_helpers import get_meeting, standin_command, wait_for, wait_status
from sqlalchemy import text

from vexa import bot_tokens
from vexa.bot_tokens import hash_bot_token

pytestmark = pytest.mark.timeout(120)

GMEET = "abc-defg-hij"


def _hdr(token: str) -> dict[str, str]:
    return {"X-API-Key": token}


async def _standin_config(redis, meeting_id: int) -> dict:
    raw = await wait_for(lambda: redis.get(f"standin:{meeting_id}:config"), what="stand-in bot config")
    return json.loads(raw)


async def test_create_runs_bot_through_lifecycle(start_manager, make_user, db, redis):
    user_id, token = await make_user()
    pubsub = redis.pubsub()
    await pubsub.psubscribe("meeting:*:events")
    async with start_manager() as client:
        resp = await client.post(
            "/bots",
            json={
                "platform": "google_meet",
                "native_meeting_id": GMEET,
                "bot_name": "Notes",
                "language": "en",
            },
            headers=_hdr(token),
        )
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["status"] == "requested" and body["user_id"] == user_id
        assert body["native_meeting_id"] == GMEET
        assert body["constructed_meeting_url"] == f"http://127.0.0.1:8099/{GMEET}"
        assert body["bot_container_id"].startswith(f"vexa-bot-{body['id']}-")
        assert "callback_token_hash" not in body["data"]
        mid = body["id"]

        cfg = await _standin_config(redis, mid)
        assert cfg["meeting_id"] == mid and cfg["platform"] == "google_meet"
        assert cfg["native_meeting_id"] == GMEET and cfg["bot_name"] == "Notes" and cfg["language"] == "en"
        assert cfg["meeting_url"] == f"http://127.0.0.1:8099/{GMEET}"
        assert "token" not in cfg and "callback_token" not in cfg  # BOT_CONFIG holds no secret
        assert token not in json.dumps(cfg)  # the caller's key never reaches the bot
        bot_token = cfg["bot_token_env"]  # what the stand-in got in BOT_TOKEN
        assert cfg["callback_url"] == str(client.base_url).rstrip("/")
        assert cfg["transcription_url"] == "ws://127.0.0.1:9090/ws"
        for key in ("leave_when_alone_s", "max_duration_s", "admission_timeout_s", "redis_url"):
            assert key in cfg

        meeting = await wait_status(db, mid, "active")
        # Only the hash of the bot's token is stored; Redis knows which meeting it is for.
        assert meeting.data["callback_token_hash"] == hash_bot_token(bot_token)
        assert bot_token not in json.dumps(meeting.data)
        claims = await bot_tokens.lookup(redis, bot_token)
        assert claims is not None and (claims.meeting_id, claims.platform) == (mid, "google_meet")
        assert not claims.ended and claims.native_meeting_id == GMEET
        steps = [(t["from"], t["to"]) for t in meeting.data["status_transition"]]
        assert steps == [
            (None, "requested"),
            ("requested", "joining"),
            ("joining", "awaiting_admission"),
            ("awaiting_admission", "active"),
        ]
        assert meeting.start_time is not None and meeting.end_time is None
        assert meeting.data["participants"] == ["Alice"]

        # Every change was published as a meeting.status event, in order.
        seen = []
        for _ in range(50):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg:
                event = json.loads(msg["data"])
                assert event["type"] == "meeting.status" and event["meeting"]["id"] == mid
                assert event["payload"]["meeting"]["id"] == mid
                assert "callback_token_hash" not in event["payload"]["meeting"]["data"]
                seen.append(event["payload"]["status"])
            if len(seen) == 4:
                break
        assert seen == ["requested", "joining", "awaiting_admission", "active"]

        status = await client.get("/bots/status", headers=_hdr(token))
        assert status.status_code == 200
        [bot] = status.json()["running_bots"]
        assert bot["meeting_id"] == mid and bot["native_meeting_id"] == GMEET and bot["status"] == "running"
    await pubsub.aclose()


async def test_duplicate_and_concurrent_duplicates(start_manager, make_user, db):
    _, token = await make_user(max_concurrent_bots=10)
    async with start_manager(BOT_COMMAND=standin_command("deaf")) as client:
        body = {"platform": "zoom", "native_meeting_id": "123456789"}
        results = await asyncio.gather(
            *(client.post("/bots", json=body, headers=_hdr(token)) for _ in range(6))
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [201, 409, 409, 409, 409, 409], [r.text for r in results]
        conflict = next(r for r in results if r.status_code == 409)
        assert "already exists" in conflict.json()["detail"]
        again = await client.post("/bots", json=body, headers=_hdr(token))
        assert again.status_code == 409
        async with db.engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM meetings"))).scalar_one()
        assert count == 1


async def test_max_concurrent_bots_is_race_safe(start_manager, make_user, db):
    _, token = await make_user(max_concurrent_bots=2)
    async with start_manager(BOT_COMMAND=standin_command("deaf")) as client:
        natives = ["111111111", "222222222", "333333333", "444444444", "555555555"]
        results = await asyncio.gather(
            *(
                client.post("/bots", json={"platform": "zoom", "native_meeting_id": n}, headers=_hdr(token))
                for n in natives
            )
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [201, 201, 429, 429, 429]
        refused = next(r for r in results if r.status_code == 429)
        assert refused.json()["detail"] == "User has reached the maximum concurrent bot limit (2)."


async def test_callbacks_auth_and_illegal_transitions(start_manager, make_user, db, redis):
    _, token = await make_user()
    async with start_manager() as client:
        mid = (
            await client.post(
                "/bots", json={"platform": "google_meet", "native_meeting_id": GMEET}, headers=_hdr(token)
            )
        ).json()["id"]
        cfg = await _standin_config(redis, mid)
        await wait_status(db, mid, "active")
        url = "/bots/internal/callback/status"
        good = {"X-Bot-Token": cfg["bot_token_env"]}

        missing = await client.post(url, json={"meeting_id": mid, "status": "active"})
        assert missing.status_code == 401
        wrong = await client.post(
            url, json={"meeting_id": mid, "status": "completed"}, headers={"X-Bot-Token": "x" * 43}
        )
        assert wrong.status_code == 403
        # The user's API key is not a bot token either.
        assert (
            await client.post(
                url, json={"meeting_id": mid, "status": "failed"}, headers={"X-Bot-Token": token}
            )
        ).status_code == 403
        other = await client.post(url, json={"meeting_id": mid + 999, "status": "active"}, headers=good)
        assert other.status_code == 403
        bad_reason = await client.post(
            url, json={"meeting_id": mid, "status": "completed", "reason": "nap"}, headers=good
        )
        assert bad_reason.status_code == 422
        manager_only = await client.post(url, json={"meeting_id": mid, "status": "stopping"}, headers=good)
        assert manager_only.status_code == 422

        backwards = await client.post(url, json={"meeting_id": mid, "status": "joining"}, headers=good)
        assert backwards.status_code == 409
        assert "illegal status transition active -> joining" in backwards.json()["detail"]
        repeat = await client.post(url, json={"meeting_id": mid, "status": "active"}, headers=good)
        assert repeat.status_code == 200 and repeat.json() == {
            "meeting_id": mid,
            "status": "active",
            "changed": False,
        }

        done = await client.post(
            url,
            json={
                "meeting_id": mid,
                "status": "failed",
                "reason": "evicted",
                "details": {"message": "kicked"},
            },
            headers=good,
        )
        assert done.status_code == 200 and done.json()["changed"] is True
        meeting = await get_meeting(db, mid)
        assert meeting.status == "failed" and meeting.end_time is not None
        assert meeting.data["completion_reason"] == "evicted"
        assert meeting.data["error_details"] == "kicked"
        after = await client.post(url, json={"meeting_id": mid, "status": "active"}, headers=good)
        assert after.status_code == 409
        # The reconciler stops the bot whose meeting has ended.
        await wait_for(lambda: _no_running(client, token), what="orphan bot stopped")


async def _no_running(client, token) -> bool:
    resp = await client.get("/bots/status", headers=_hdr(token))
    return resp.status_code == 200 and resp.json()["running_bots"] == []


async def test_delete_publishes_leave_then_completes(start_manager, make_user, db, redis):
    _, token = await make_user()
    async with start_manager() as client:
        mid = (
            await client.post(
                "/bots", json={"platform": "teams", "native_meeting_id": "1234567890"}, headers=_hdr(token)
            )
        ).json()["id"]
        await wait_status(db, mid, "active")
        pubsub = redis.pubsub()
        await pubsub.subscribe(f"bot_commands:meeting:{mid}")
        resp = await client.delete("/bots/teams/1234567890", headers=_hdr(token))
        assert resp.status_code == 202 and "message" in resp.json()
        message = await wait_for(
            lambda: pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2), what="leave command"
        )
        assert json.loads(message["data"]) == {"action": "leave"}
        await pubsub.aclose()
        meeting = await wait_status(db, mid, "completed")
        assert meeting.data["completion_reason"] == "stopped"
        steps = [t["to"] for t in meeting.data["status_transition"]]
        assert steps[-2:] == ["stopping", "completed"]
        # The ended meeting's bot token opens no new session, and lives only for the grace period.
        bot_token = (await _standin_config(redis, mid))["bot_token_env"]
        claims = await wait_for(lambda: bot_tokens.lookup(redis, bot_token), what="bot token record")
        assert claims.ended and claims.meeting_id == mid
        ttl = await redis.ttl(bot_tokens.KEY_PREFIX + hash_bot_token(bot_token))
        assert 0 < ttl <= 3600
        assert await redis.lrange(f"standin:{mid}:commands", 0, -1) == ['{"action": "leave"}']
        await wait_for(lambda: _no_running(client, token), what="bot process gone")
        # Nothing active any more.
        assert (await client.delete("/bots/teams/1234567890", headers=_hdr(token))).status_code == 404
        # The same meeting can be joined again once the previous bot finished.
        again = await client.post(
            "/bots", json={"platform": "teams", "native_meeting_id": "1234567890"}, headers=_hdr(token)
        )
        assert again.status_code == 201


async def test_delete_hard_stops_a_bot_that_ignores_leave(start_manager, make_user, db):
    _, token = await make_user()
    async with start_manager(BOT_COMMAND=standin_command("deaf"), BOT_STOP_TIMEOUT_S=0.5) as client:
        mid = (
            await client.post(
                "/bots", json={"platform": "zoom", "native_meeting_id": "987654321"}, headers=_hdr(token)
            )
        ).json()["id"]
        await wait_status(db, mid, "joining")
        assert (await client.delete("/bots/zoom/987654321", headers=_hdr(token))).status_code == 202
        meeting = await wait_status(db, mid, "completed")
        assert meeting.data["completion_reason"] == "stopped"
        assert meeting.data["status_transition"][-1]["source"] == "orchestrator"
        await wait_for(lambda: _no_running(client, token), what="deaf bot killed")


async def test_crashed_bot_is_marked_failed(start_manager, make_user, db):
    _, token = await make_user()
    async with start_manager(BOT_COMMAND=standin_command("crash")) as client:
        mid = (
            await client.post(
                "/bots", json={"platform": "zoom", "native_meeting_id": "555666777"}, headers=_hdr(token)
            )
        ).json()["id"]
        meeting = await wait_status(db, mid, "failed")
        assert meeting.data["completion_reason"] == "bot_crashed"
        assert meeting.data["completion_details"]["exit_code"] == 3
        assert meeting.data["error_details"] == "the bot process exited (code 3) without a final status"
        assert [t["to"] for t in meeting.data["status_transition"]] == ["requested", "joining", "failed"]
        assert meeting.end_time is not None


async def test_reconfigure(start_manager, make_user, db, redis):
    _, token = await make_user()
    async with start_manager() as client:
        path = f"/bots/google_meet/{GMEET}/config"
        assert (await client.put(path, json={"language": "de"}, headers=_hdr(token))).status_code == 404
        mid = (
            await client.post(
                "/bots", json={"platform": "google_meet", "native_meeting_id": GMEET}, headers=_hdr(token)
            )
        ).json()["id"]
        await wait_status(db, mid, "active")
        assert (await client.put(path, json={"language": "xx-bad-"}, headers=_hdr(token))).status_code == 422
        resp = await client.put(path, json={"language": "de", "task": "translate"}, headers=_hdr(token))
        assert resp.status_code == 202
        commands = await wait_for(lambda: redis.lrange(f"standin:{mid}:commands", 0, -1), what="reconfigure")
        assert json.loads(commands[0]) == {"action": "reconfigure", "language": "de", "task": "translate"}
        meeting = await get_meeting(db, mid)
        assert meeting.data["language"] == "de" and meeting.data["task"] == "translate"
        assert (await client.delete(f"/bots/google_meet/{GMEET}", headers=_hdr(token))).status_code == 202
        # Stopping: no longer reconfigurable.
        stopping = await client.put(path, json={"language": "fr"}, headers=_hdr(token))
        assert stopping.status_code in (404, 409)


async def test_participants_and_languages_written_at_completion(start_manager, make_user, db, redis):
    _, token = await make_user()
    async with start_manager() as client:
        mid = (
            await client.post(
                "/bots", json={"platform": "google_meet", "native_meeting_id": GMEET}, headers=_hdr(token)
            )
        ).json()["id"]
        await wait_status(db, mid, "active")
        async with db.engine.begin() as conn:
            # Transcript rows already flushed by the collector...
            await conn.execute(
                text(
                    "INSERT INTO transcriptions"
                    " (meeting_id, start_time, end_time, text, speaker, language, session_uid) VALUES"
                    " (:m, 1.0, 2.0, 'hi', 'Alice', 'en', 's1'), (:m, 3.0, 4.0, 'ja', 'Dana', 'en', 's1')"
                ),
                {"m": mid},
            )
            # ...and a user edit that must survive (PATCH /meetings in the collector).
            await conn.execute(
                text(
                    "UPDATE meetings SET data = data"
                    """ || '{"participants": ["Zed"], "languages": ["fr"]}'::jsonb WHERE id = :m"""
                ),
                {"m": mid},
            )
        # ...plus a segment still only in Redis.
        await redis.hset(
            f"meeting:{mid}:segments",
            "s2:5.000",
            json.dumps(
                {"start": 5.0, "end_time": 6.0, "text": "hallo", "language": "de", "speaker": "Carol"}
            ),
        )
        await redis.publish(f"bot_commands:meeting:{mid}", json.dumps({"action": "end_meeting"}))
        meeting = await wait_status(db, mid, "completed")
        assert meeting.data["completion_reason"] == "meeting_ended"
        assert meeting.data["participants"] == ["Zed", "Alice", "Bob", "Dana", "Carol"]
        assert meeting.data["languages"] == ["fr", "en", "de"]


async def test_bot_status_is_scoped_to_caller(start_manager, make_user, db):
    _, token_a = await make_user()
    _, token_b = await make_user()
    async with start_manager(BOT_COMMAND=standin_command("deaf")) as client:
        a = await client.post(
            "/bots", json={"platform": "zoom", "native_meeting_id": "100000001"}, headers=_hdr(token_a)
        )
        b = await client.post(
            "/bots", json={"platform": "zoom", "native_meeting_id": "100000001"}, headers=_hdr(token_b)
        )
        assert a.status_code == b.status_code == 201  # same meeting, different users: both allowed
        for token, mine in ((token_a, a.json()["id"]), (token_b, b.json()["id"])):
            bots = (await client.get("/bots/status", headers=_hdr(token))).json()["running_bots"]
            assert [bot["meeting_id"] for bot in bots] == [mine]
        # B cannot stop A's bot: it only sees its own meetings.
        assert (await client.delete("/bots/zoom/100000001", headers=_hdr(token_b))).status_code == 202
        assert (await get_meeting(db, a.json()["id"])).status != "stopping"


async def test_auth_failures(start_manager, make_user):
    await make_user()
    async with start_manager() as client:
        calls = [
            ("POST", "/bots", {"platform": "zoom", "native_meeting_id": "123456789"}),
            ("DELETE", "/bots/zoom/123456789", None),
            ("PUT", "/bots/zoom/123456789/config", {"language": "en"}),
            ("GET", "/bots/status", None),
        ]
        for method, path, body in calls:
            none = await client.request(method, path, json=body)
            assert none.status_code == 401, (method, path)
            assert "API key" in none.json()["detail"]
            bad = await client.request(method, path, json=body, headers={"X-API-Key": "not-a-real-key"})
            assert bad.status_code == 403, (method, path)
        invalid = await client.post(
            "/bots", json={"platform": "zoom", "native_meeting_id": "12ab"}, headers={"X-API-Key": "x"}
        )
        assert invalid.status_code in (403, 422)


async def test_orchestrator_start_failure_fails_meeting(start_manager, make_user, db, tmp_path):
    _, token = await make_user()
    async with start_manager(BOT_COMMAND=[str(tmp_path / "no-such-bot")]) as client:
        resp = await client.post(
            "/bots", json={"platform": "zoom", "native_meeting_id": "123123123"}, headers=_hdr(token)
        )
        assert resp.status_code == 503
        assert "Could not start a bot" in resp.json()["detail"]
        async with db.engine.connect() as conn:
            mid = (await conn.execute(text("SELECT id FROM meetings"))).scalar_one()
        meeting = await get_meeting(db, mid)
        assert meeting.status == "failed" and meeting.data["completion_reason"] == "join_error"
        assert meeting.data["completion_details"]["error"] == "bot_start_failed"
        assert meeting.data["error_details"].startswith("could not start the bot: ")


async def test_reconciler_fails_meetings_left_without_a_bot(start_manager, make_user, db):
    """A manager that died between INSERT and starting the bot leaves 'requested' rows behind."""
    user_id, _ = await make_user()
    async with db.engine.begin() as conn:
        stale = (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status, created_at)"
                    " VALUES (:u, 'zoom', '123456789', 'requested', now() - interval '10 minutes')"
                    " RETURNING id"
                ),
                {"u": user_id},
            )
        ).scalar_one()
        orphan = (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status, bot_container_id)"
                    " VALUES (:u, 'zoom', '987654321', 'active', 'vexa-bot-from-a-previous-run') RETURNING id"
                ),
                {"u": user_id},
            )
        ).scalar_one()
    async with start_manager() as client:
        assert (await client.get("/openapi.json")).status_code == 200
        meeting = await wait_status(db, stale, "failed")
        assert meeting.data["completion_reason"] == "join_error"
        assert meeting.data["completion_details"]["error"] == "bot_start_failed"
        # An active meeting whose bot this manager does not know (e.g. killed with a previous process).
        meeting = await wait_status(db, orphan, "failed")
        assert meeting.data["completion_reason"] == "bot_crashed"


async def test_custom_vocabulary_reaches_the_bot_and_is_validated(start_manager, make_user, db, redis):
    _, token = await make_user()
    async with start_manager() as client:
        words = ["x" * 90] * 10  # 918 characters joined: more than a session's hotwords can carry
        too_long = await client.post(
            "/bots",
            json={"platform": "google_meet", "native_meeting_id": GMEET, "custom_vocabulary": words},
            headers=_hdr(token),
        )
        assert too_long.status_code == 422 and "custom_vocabulary" in too_long.text
        empty_word = await client.post(
            "/bots",
            json={"platform": "google_meet", "native_meeting_id": GMEET, "custom_vocabulary": [""]},
            headers=_hdr(token),
        )
        assert empty_word.status_code == 422
        resp = await client.post(
            "/bots",
            json={
                "platform": "google_meet",
                "native_meeting_id": GMEET,
                "custom_vocabulary": ["Zyrtalix", "  Siobhan   Ngata "],
            },
            headers=_hdr(token),
        )
        assert resp.status_code == 201, resp.text
        mid = resp.json()["id"]
        assert resp.json()["data"]["custom_vocabulary"] == ["Zyrtalix", "Siobhan Ngata"]
        cfg = await _standin_config(redis, mid)
        assert cfg["custom_vocabulary"] == ["Zyrtalix", "Siobhan Ngata"]
    # The bot turns the list into the transcription session's hotwords.
    from vexa.bot.main import AudioRouter
    from vexa.bot.settings import BotConfig, BotSettings

    router = AudioRouter(BotConfig.model_validate({**cfg, "token": cfg["bot_token_env"]}), BotSettings())
    assert router.session_config["hotwords"] == "Zyrtalix, Siobhan Ngata"
    assert router.session_config["token"] == cfg["bot_token_env"]  # the session carries the bot's token
