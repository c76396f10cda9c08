"""The user's webhook settings, delivery log and ping, and upstream's analytics routes, on real admin-apis.

The session's admin-api runs with the default SSRF guard (private addresses refused);
a second one here runs with WEBHOOK_ALLOW_PRIVATE_URLS=true, as an operator would set it
for receivers on a trusted network, so the ping can reach the receiver STAND-IN on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from vexa.embedded import free_port
from vexa.testing.asgi import serve_app
from vexa.testing.processes import ServiceProcess
from vexa.testing.webhook_receiver import WebhookReceiverStandIn

pytestmark = pytest.mark.timeout(120)
PUBLIC = "https://93.184.215.14/hooks/vexa"
ANALYTICS_TOKEN = "analytics-token-0123456789"


@pytest.fixture(scope="module")
def open_admin(service_env: dict[str, str], tmp_session_dir: Path) -> Iterator[ServiceProcess]:
    env = {**service_env, "WEBHOOK_ALLOW_PRIVATE_URLS": "true", "ANALYTICS_API_TOKEN": ANALYTICS_TOKEN}
    proc = ServiceProcess("admin", free_port(), env, log_path=tmp_session_dir / "logs" / "admin-open.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


async def test_put_takes_upstreams_fields_and_shows_the_secret_once(admin_service, admin_headers, make_user):
    user_id, token = await make_user()
    key = {"X-API-Key": token}
    async with httpx.AsyncClient(base_url=admin_service.base_url, timeout=10) as client:
        first = await client.put("/user/webhook", json={"webhook_url": PUBLIC}, headers=key)
        assert first.status_code == 200, first.text
        generated = first.json()["webhook_secret"]
        assert generated.startswith("whsec_") and first.json()["webhook_events"] == ["meeting.completed"]
        assert first.json()["data"]["webhook_url"] == PUBLIC

        upstream_body = {
            "webhook_url": PUBLIC,
            "webhook_secret": "my-own-secret-from-upstream",
            "webhook_events": {"meeting.completed": True, "bot.failed": True, "meeting.started": False},
        }
        chosen = await client.put("/user/webhook", json=upstream_body, headers=key)
        assert chosen.status_code == 200, chosen.text
        assert chosen.json()["webhook_secret"] == "my-own-secret-from-upstream"
        assert chosen.json()["webhook_events"] == ["bot.failed", "meeting.completed"]
        kept = await client.put("/user/webhook", json={"webhook_url": PUBLIC + "/v2"}, headers=key)
        assert kept.json()["webhook_secret"] is None and kept.json()["webhook_secret_set"] is True
        assert kept.json()["webhook_events"] == ["bot.failed", "meeting.completed"]  # choice kept

        listed = await client.put(
            "/user/webhook", json={"webhook_url": PUBLIC, "webhook_events": ["transcript.ready"]}, headers=key
        )
        assert listed.json()["data"]["webhook_events"] == {"transcription.ready": True}
        unknown = await client.put(
            "/user/webhook",
            json={"webhook_url": PUBLIC, "webhook_events": {"meeting.exploded": True}},
            headers=key,
        )
        assert unknown.status_code == 422 and "meeting.completed" in unknown.text

        shown = (await client.get("/user/webhook", headers=key)).json()
        assert shown == {
            "webhook_url": PUBLIC,
            "webhook_secret_set": True,
            "webhook_secret": "********ream",
            "webhook_events": {"transcription.ready": True},
            "enabled_events": ["meeting.completed", "transcription.ready"],
        }
        user_view = await client.get(f"/admin/users/{user_id}", headers=admin_headers)
        details = await client.get(f"/admin/analytics/users/{user_id}/details", headers=admin_headers)
        for view in (user_view.text, details.text):
            assert "my-own-secret" not in view and generated not in view

        assert (await client.delete("/user/webhook", headers=key)).status_code == 204
        gone = (await client.get("/user/webhook", headers=key)).json()
        assert gone["webhook_url"] is None and gone["webhook_secret_set"] is False
        assert (await client.post("/user/webhook/test", headers=key)).status_code == 404


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://100.64.0.1/hook", "carrier-grade NAT"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
    ],
)
async def test_put_refuses_urls_inside_the_network(admin_service, make_user, url, why):
    _, token = await make_user()
    async with httpx.AsyncClient(base_url=admin_service.base_url, timeout=10) as client:
        refused = await client.put("/user/webhook", json={"webhook_url": url}, headers={"X-API-Key": token})
    assert refused.status_code == 422, refused.text
    assert why in refused.json()["detail"][0]["msg"]


async def test_ping_is_signed_and_the_delivery_log_shows_it(open_admin, make_user):
    _, token = await make_user()
    key = {"X-API-Key": token}
    receiver = WebhookReceiverStandIn()
    async with (
        serve_app(receiver.app) as base,
        httpx.AsyncClient(base_url=open_admin.base_url, timeout=20) as client,
    ):
        put = await client.put(
            "/user/webhook", json={"webhook_url": f"{base}/hook?k=receiver-secret"}, headers=key
        )
        assert put.status_code == 200, put.text
        receiver.secret = put.json()["webhook_secret"]
        ping = await client.post("/user/webhook/test", headers=key)
        assert ping.status_code == 200, ping.text
        result = ping.json()
        assert result["delivered"] is True and result["status_code"] == 200
        assert (
            receiver.events() == ["webhook.ping"] and receiver.processed[0]["event_id"] == result["event_id"]
        )

        receiver.answer = 503
        failed = (await client.post("/user/webhook/test", headers=key)).json()
        assert failed["delivered"] is False and failed["status_code"] == 503

        log = await client.get("/user/webhook/deliveries", params={"limit": 10}, headers=key)
        assert log.status_code == 200
        rows = log.json()["deliveries"]
        assert [(r["outcome"], r["status_code"], r["attempt"]) for r in rows] == [
            ("failed", 503, 1),
            ("delivered", 200, 1),
        ]
        assert rows[0]["target_host"] == "127.0.0.1" and "receiver-secret" not in log.text
        assert receiver.secret not in log.text


async def test_analytics_routes_with_upstreams_shapes(open_admin, make_user, db):
    owner, _ = await make_user()
    async with db.engine.begin() as conn:
        meeting_id = (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status, start_time,"
                    " end_time) VALUES (:u, 'zoom', '123456789', 'completed',"
                    " now() - interval '10 minutes', now())"
                    " RETURNING id"
                ),
                {"u": owner},
            )
        ).scalar_one()
        await conn.execute(
            text(
                "INSERT INTO transcriptions (meeting_id, start_time, end_time, text, speaker, language)"
                " VALUES (:m, 0, 2.5, 'hello', 'Alice', 'en'), (:m, 3, 4, 'hi', 'Bob', 'de')"
            ),
            {"m": meeting_id},
        )
    analytics = {"X-Admin-API-Key": ANALYTICS_TOKEN}
    async with httpx.AsyncClient(base_url=open_admin.base_url, timeout=10) as client:
        stats = await client.get("/admin/stats/meetings-users", headers=analytics)
        assert stats.status_code == 200, stats.text
        assert stats.json()["total"] == 1 and stats.json()["items"][0]["user"]["id"] == owner
        users = (await client.get("/admin/analytics/users", headers=analytics)).json()
        assert [u["id"] for u in users] == [owner] and "data" not in users[0]
        meetings = (await client.get("/admin/analytics/meetings", headers=analytics)).json()
        assert meetings[0]["native_meeting_id"] == "123456789" and "data" not in meetings[0]
        # The per-meeting and per-user views need the admin key itself.
        telematics_path = f"/admin/analytics/meetings/{meeting_id}/telematics"
        assert (await client.get(telematics_path, headers=analytics)).status_code == 403
        assert (await client.get("/admin/users", headers=analytics)).status_code == 403

        admin = {"X-Admin-API-Key": "test-admin-token-0123456789"}
        tele = await client.get(telematics_path, params={"include_transcriptions": "true"}, headers=admin)
        assert tele.status_code == 200, tele.text
        body = tele.json()
        assert body["transcription_stats"] == {
            "total_transcriptions": 2,
            "total_duration": 3.5,
            "unique_speakers": 2,
            "languages_detected": ["de", "en"],
        }
        assert 590 < body["performance_metrics"]["total_duration"] < 610
        details = await client.get(
            f"/admin/analytics/users/{owner}/details?include_tokens=true", headers=admin
        )
        assert details.status_code == 200, details.text
        stats_ = details.json()["meeting_stats"]
        assert stats_["total_meetings"] == 1 and stats_["completed_meetings"] == 1
        assert 590 < stats_["average_duration"] < 610
        assert details.json()["usage_patterns"]["most_used_platform"] == "zoom"
        assert [
            set(t) >= {"id", "token_prefix"} and "token" not in t for t in details.json()["api_tokens"]
        ] == [True]
        assert (await client.get("/admin/analytics/users/999999/details", headers=admin)).status_code == 404
        assert (
            json.loads((await client.get("/admin/analytics/meetings", headers=admin)).text)[0]["id"]
            == meeting_id
        )
