"""The gateway's HTTP side end to end: real gateway + admin-api processes, real PostgreSQL/Valkey."""

from __future__ import annotations

import httpx
import pytest
from gateway_helpers import ClosedPort, start_gateway  # type: ignore[import-not-found]

pytestmark = pytest.mark.timeout(120)

USER_ROUTES = [
    ("POST", "/bots", {"platform": "google_meet", "native_meeting_id": "abc-defg-hij"}),
    ("DELETE", "/bots/google_meet/abc-defg-hij", None),
    ("PUT", "/bots/google_meet/abc-defg-hij/config", {"language": "en"}),
    ("GET", "/bots/status", None),
    ("GET", "/meetings", None),
    ("GET", "/transcripts/google_meet/abc-defg-hij", None),
    ("PATCH", "/meetings/google_meet/abc-defg-hij", {"data": {"name": "Weekly"}}),
    ("DELETE", "/meetings/google_meet/abc-defg-hij", None),
    ("GET", "/bots", None),
    ("GET", "/meetings/1", None),
    ("PUT", "/user/webhook", {"webhook_url": "https://93.184.215.14/x"}),
    ("GET", "/user/webhook", None),
    ("DELETE", "/user/webhook", None),
    ("GET", "/user/webhook/deliveries", None),
    ("POST", "/user/webhook/test", None),
]
ADMIN_ROUTES = [
    ("POST", "/admin/users", {"email": "x@example.com"}),
    ("GET", "/admin/users", None),
    ("GET", "/admin/users/1", None),
    ("GET", "/admin/users/email/x@example.com", None),
    ("PATCH", "/admin/users/1", {"name": "x"}),
    ("DELETE", "/admin/users/1", None),
    ("POST", "/admin/users/1/tokens", None),
    ("GET", "/admin/users/1/tokens", None),
    ("DELETE", "/admin/tokens/1", None),
    ("GET", "/admin/stats/meetings-users", None),
    ("GET", "/admin/analytics/users", None),
    ("GET", "/admin/analytics/meetings", None),
    ("GET", "/admin/analytics/meetings/1/telematics", None),
    ("GET", "/admin/analytics/users/1/details", None),
]


@pytest.fixture
async def client(gateway, db):
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as c:
        yield c


async def test_admin_and_user_flow_through_gateway(client, admin_headers):
    created = await client.post("/admin/users", json={"email": "gw@example.com"}, headers=admin_headers)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    again = await client.post("/admin/users", json={"email": "gw@example.com"}, headers=admin_headers)
    assert again.status_code == 200 and again.json()["id"] == user_id
    token = (await client.post(f"/admin/users/{user_id}/tokens", headers=admin_headers)).json()["token"]

    hook = await client.put(
        "/user/webhook", json={"webhook_url": "https://93.184.215.14/a"}, headers={"X-API-Key": token}
    )
    assert hook.status_code == 200 and hook.json()["data"]["webhook_url"] == "https://93.184.215.14/a"

    found = await client.get("/admin/users/email/gw@example.com", headers=admin_headers)
    assert found.status_code == 200 and found.json()["id"] == user_id
    detail = await client.get(f"/admin/users/{user_id}", headers=admin_headers)
    assert detail.json()["api_tokens"][0]["token_prefix"] == token[:6]
    listed = await client.get("/admin/users", params={"limit": 1}, headers=admin_headers)
    assert [u["id"] for u in listed.json()] == [user_id]  # the query string reached admin-api
    assert (await client.get("/admin/users/999999", headers=admin_headers)).status_code == 404


async def test_revocation_takes_effect_at_once_in_the_gateways_cache(client, admin_headers, make_user):
    user_id, token = await make_user()
    headers = {"X-API-Key": token}
    body = {"webhook_url": "https://93.184.215.14/b"}
    # Warm both processes' caches (the gateway checks the key itself, and so does admin-api).
    assert (await client.put("/user/webhook", json=body, headers=headers)).status_code == 200
    assert (
        await client.get("/bots/status", headers=headers)
    ).status_code == 503  # authenticated, downstream down
    token_id = (await client.get(f"/admin/users/{user_id}/tokens", headers=admin_headers)).json()[0]["id"]
    assert (await client.delete(f"/admin/tokens/{token_id}", headers=admin_headers)).status_code == 204
    # The very next request is refused by the gateway itself (its downstream is down: a 503 would leak).
    assert (await client.get("/bots/status", headers=headers)).status_code == 403
    assert (await client.put("/user/webhook", json=body, headers=headers)).status_code == 403


@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES)
async def test_user_routes_need_a_valid_key(client, method, path, body):
    missing = await client.request(method, path, json=body)
    assert missing.status_code == 401 and "X-API-Key" in missing.json()["detail"]
    wrong = await client.request(method, path, json=body, headers={"X-API-Key": "x" * 40})
    assert wrong.status_code == 403 and wrong.json() == {"detail": "Invalid or revoked API key"}


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_need_the_admin_key(client, method, path, body):
    missing = await client.request(method, path, json=body)
    assert missing.status_code == 401
    wrong = await client.request(method, path, json=body, headers={"X-Admin-API-Key": "wrong"})
    assert wrong.status_code == 403 and wrong.json() == {"detail": "Invalid admin API key"}


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("DELETE", "/bots/google_meet/abc-def-hij", None, "3-4-3"),
        ("PUT", "/bots/zoom/12ab/config", {"language": "en"}, "9 to 11 digits"),
        ("GET", "/transcripts/teams/123", None, "10 to 15 digits"),
        ("PATCH", "/meetings/google_meet/ABC-DEFG-HIJ", {"data": {"name": "x"}}, "3-4-3"),
        ("DELETE", "/meetings/zoom/1234567890123", None, "9 to 11 digits"),
        ("POST", "/bots", {"platform": "google_meet", "native_meeting_id": "nope"}, "3-4-3"),
        ("GET", "/transcripts/skype/123456789", None, "google_meet"),
    ],
)
async def test_bad_meeting_ids_are_rejected_before_forwarding(
    client, make_user, method, path, body, expected
):
    _, token = await make_user()
    response = await client.request(method, path, json=body, headers={"X-API-Key": token})
    assert response.status_code == 422  # not 503: the (down) downstream was never asked
    assert expected in response.text


@pytest.mark.parametrize(("method", "path", "body"), [r for r in USER_ROUTES if not r[1].startswith("/user")])
async def test_downstream_down_is_a_clear_503(client, make_user, method, path, body):
    _, token = await make_user()
    response = await client.request(method, path, json=body, headers={"X-API-Key": token})
    assert response.status_code == 503
    reads_meetings = path.startswith(("/meetings", "/transcripts")) or (method, path) == ("GET", "/bots")
    service = "transcription-collector" if reads_meetings else "bot-manager"
    assert response.json()["detail"].startswith(service) and "Traceback" not in response.text
    assert response.headers["retry-after"]


async def test_downstream_timeout_is_a_504_and_admin_down_a_503(
    service_env, hung_service, tmp_session_dir, make_user
):
    _, token = await make_user()
    closed = ClosedPort()
    gateway = start_gateway(
        service_env,
        tmp_session_dir / "logs" / "gateway-hung.log",
        ADMIN_API_URL=closed.url,
        BOT_MANAGER_URL=hung_service.url,
        TRANSCRIPTION_COLLECTOR_URL=hung_service.url,
        GATEWAY_REQUEST_TIMEOUT_S="1",
    )
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as client:
            slow = await client.get("/meetings", headers={"X-API-Key": token})
            assert slow.status_code == 504 and "did not answer in time" in slow.json()["detail"]
            slow_bot = await client.get("/bots/status", headers={"X-API-Key": token})
            assert slow_bot.status_code == 504 and slow_bot.json()["detail"].startswith("bot-manager")
            admin_down = await client.get("/admin/users", headers={"X-Admin-API-Key": "anything"})
            assert admin_down.status_code == 503 and admin_down.json()["detail"].startswith("admin-api")
    finally:
        gateway.stop()
        closed.close()


async def test_internal_routes_are_not_exposed(client, make_user):
    _, token = await make_user()
    for method in ("POST", "GET", "PUT"):
        response = await client.request(
            method,
            "/bots/internal/callback/status",
            json={"meeting_id": 1, "status": "active"},
            headers={"X-API-Key": token, "X-Bot-Token": "x"},
        )
        assert response.status_code in (404, 405, 422), response.text
        assert response.status_code != 503  # never forwarded to the (down) bot-manager


async def test_openapi_describes_every_public_route(client):
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {"X-API-Key", "X-Admin-API-Key"}
    paths = spec["paths"]
    for method, path, _ in USER_ROUTES + ADMIN_ROUTES:
        templated = (
            path.replace("google_meet/abc-defg-hij", "{platform}/{native_meeting_id}")
            .replace("/1", "/{user_id}")
            .replace("email/x@example.com", "email/{email}")
        )
        if path.startswith("/admin/tokens"):
            templated = "/admin/tokens/{token_id}"
        if path.startswith(("/meetings/1", "/admin/analytics/meetings/1")):
            templated = path.replace("/1", "/{meeting_id}")
        assert method.lower() in paths[templated], (method, templated)
        operation = paths[templated][method.lower()]
        assert operation["security"], templated
        assert "503" in operation["responses"] and "422" in operation["responses"]
    assert paths["/meetings"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"
    ].endswith("MeetingListResponse")
    assert not any("internal" in p for p in paths)
    assert (await client.get("/docs")).status_code == 200
