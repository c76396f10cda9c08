"""Scoped and expiring API keys, and revocation over REST, through the real gateway + admin-api.

The bot-manager and collector are not running behind this gateway (their ports are closed),
so a request that passes authentication answers 503: that is how "allowed" is told apart
from 401/403 here without those services.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from test_gateway_ws import MEET, insert_meeting, recv_json, ws_url  # type: ignore[import-not-found]
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def client(gateway, db):
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as c:
        yield c


async def _user(client: httpx.AsyncClient, admin_headers: dict[str, str], email: str) -> int:
    created = await client.post("/admin/users", json={"email": email}, headers=admin_headers)
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def _token(client, admin_headers, user_id: int, body: dict | None = None, **params) -> dict:
    resp = await client.post(
        f"/admin/users/{user_id}/tokens", json=body, params=params or None, headers=admin_headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_scoped_keys_are_refused_outside_their_scope_with_the_scope_named(
    client, gateway, admin_headers, db
):
    user_id = await _user(client, admin_headers, "scopes@example.com")
    full = await _token(client, admin_headers, user_id)
    bots = await _token(client, admin_headers, user_id, {"scope": "bots"})
    reader = await _token(client, admin_headers, user_id, scope="transcripts")  # upstream-style query
    assert full["scope"] == "full" and full["expires_at"] is None
    assert bots["scope"] == "bots" and reader["scope"] == "transcripts"

    def hdr(t: dict) -> dict[str, str]:
        return {"X-API-Key": t["token"]}

    meet_bot = {"platform": "google_meet", "native_meeting_id": "abc-defg-hij"}
    # In scope: authentication passes and the (absent) downstream answers 503.
    assert (await client.post("/bots", json=meet_bot, headers=hdr(bots))).status_code == 503
    assert (await client.get("/bots/status", headers=hdr(bots))).status_code == 503
    assert (await client.get("/meetings", headers=hdr(reader))).status_code == 503
    assert (await client.get("/transcripts/google_meet/abc-defg-hij", headers=hdr(reader))).status_code == 503
    for method, path, body in [("GET", "/meetings", None), ("GET", "/bots/status", None)]:
        assert (await client.request(method, path, json=body, headers=hdr(full))).status_code == 503

    refusals = [
        (bots, "GET", "/meetings", None),
        (bots, "PUT", "/user/webhook", {"webhook_url": "https://hooks.example.com/x"}),
        (reader, "POST", "/bots", meet_bot),
        (reader, "PATCH", "/meetings/google_meet/abc-defg-hij", {"data": {"name": "x"}}),
        (reader, "DELETE", "/meetings/google_meet/abc-defg-hij", None),
    ]
    for token, method, path, body in refusals:
        resp = await client.request(method, path, json=body, headers=hdr(token))
        assert resp.status_code == 403, (method, path, resp.text)
        assert f"scope '{token['scope']}'" in resp.json()["detail"] and path in resp.json()["detail"]

    # The live-transcript WebSocket is a read: transcripts keys may subscribe, bots keys may not.
    await insert_meeting(db, user_id)
    async with connect(ws_url(gateway, reader["token"])) as ws:
        await ws.send(json.dumps({"action": "subscribe", "meetings": [MEET]}))
        assert (await recv_json(ws))["type"] == "subscribed"
    async with connect(ws_url(gateway, bots["token"])) as ws:
        error = await recv_json(ws)
        assert "scope 'bots'" in error["error"]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 4403

    listed = await client.get(f"/admin/users/{user_id}/tokens", headers=admin_headers)
    assert listed.status_code == 200
    assert [(t["id"], t["scope"]) for t in listed.json()] == [
        (full["id"], "full"),
        (bots["id"], "bots"),
        (reader["id"], "transcripts"),
    ]
    for secret in (full["token"], bots["token"], reader["token"]):
        assert secret not in listed.text
    assert all("token" not in t for t in listed.json())

    bad = await client.post(f"/admin/users/{user_id}/tokens", json={"scope": "admin"}, headers=admin_headers)
    assert bad.status_code == 422


async def test_an_expired_key_answers_401_on_time_and_its_socket_closes(client, gateway, admin_headers, db):
    user_id = await _user(client, admin_headers, "expiry@example.com")
    past = await client.post(
        f"/admin/users/{user_id}/tokens",
        json={"expires_at": (datetime.now(UTC) - timedelta(seconds=5)).isoformat()},
        headers=admin_headers,
    )
    assert past.status_code == 422
    expires_at = datetime.now(UTC) + timedelta(seconds=8)  # room for the setup below on a busy machine
    token = await _token(client, admin_headers, user_id, {"expires_at": expires_at.isoformat()})
    assert datetime.fromisoformat(token["expires_at"]) == expires_at
    hdr = {"X-API-Key": token["token"]}
    await insert_meeting(db, user_id)
    assert (await client.get("/meetings", headers=hdr)).status_code == 503  # valid (and now cached)
    async with connect(ws_url(gateway, token["token"])) as ws:
        await ws.send(json.dumps({"action": "subscribe", "meetings": [MEET]}))
        assert (await recv_json(ws))["type"] == "subscribed"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 12)
        closed_at = datetime.now(UTC)
        assert closed.value.rcvd.code == 4401 and closed.value.rcvd.reason == "API key expired"
    assert expires_at <= closed_at < expires_at + timedelta(seconds=1)
    expired = await client.get("/meetings", headers=hdr)
    assert expired.status_code == 401 and expired.json() == {"detail": "API key expired"}
    async with connect(ws_url(gateway, token["token"])) as ws:
        assert (await recv_json(ws))["error"] == "API key expired"

    relative = await _token(client, admin_headers, user_id, expires_in=3600)  # upstream-style query
    left = datetime.fromisoformat(relative["expires_at"]) - datetime.now(UTC)
    assert timedelta(minutes=59) < left <= timedelta(hours=1)


async def test_a_revoked_key_stops_working_over_rest_within_a_second(client, admin_headers, db):
    user_id = await _user(client, admin_headers, "revoke-rest@example.com")
    token = await _token(client, admin_headers, user_id)
    hdr = {"X-API-Key": token["token"]}
    assert (await client.get("/meetings", headers=hdr)).status_code == 503  # valid, and cached
    revoked = await client.delete(f"/admin/tokens/{token['id']}", headers=admin_headers)
    assert revoked.status_code == 204
    loop = asyncio.get_running_loop()
    started = loop.time()
    while (await client.get("/meetings", headers=hdr)).status_code != 403:
        assert loop.time() - started < 1.0, "the revoked key still works after a second"
        await asyncio.sleep(0.02)
