"""admin-api end to end: a real process, real PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import text

from vexa.auth import REVOCATION_CHANNEL, hash_token

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def admin(admin_service, admin_headers, db):
    async with httpx.AsyncClient(
        base_url=admin_service.base_url, headers=admin_headers, timeout=10
    ) as client:
        yield client


async def test_user_and_token_lifecycle(admin, db, admin_service):
    created = await admin.post(
        "/admin/users", json={"email": "ada@example.com", "name": "Ada", "max_concurrent_bots": 2}
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == "ada@example.com" and user["max_concurrent_bots"] == 2 and user["data"] == {}

    again = await admin.post("/admin/users", json={"email": "ada@example.com", "name": "Other"})
    assert again.status_code == 200 and again.json()["id"] == user["id"] and again.json()["name"] == "Ada"

    by_email = await admin.get("/admin/users/email/ada@example.com")
    assert by_email.status_code == 200 and by_email.json()["id"] == user["id"]
    assert (await admin.get("/admin/users/email/nobody@example.com")).status_code == 404

    token = await admin.post(f"/admin/users/{user['id']}/tokens")
    assert token.status_code == 201
    plaintext = token.json()["token"]
    assert len(plaintext) == 40

    # Only the hash is stored; the listing shows a prefix, never the secret.
    async with db.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT token_hash, token_prefix FROM api_tokens"))).one()
    assert stored.token_hash == hash_token(plaintext) and plaintext not in stored.token_hash
    assert plaintext.startswith(stored.token_prefix) and len(stored.token_prefix) < 10

    listed = (await admin.get(f"/admin/users/{user['id']}/tokens")).json()
    assert [t["id"] for t in listed] == [token.json()["id"]]
    assert "token" not in listed[0] and listed[0]["revoked"] is False

    detail = (await admin.get(f"/admin/users/{user['id']}")).json()
    assert [t["token_prefix"] for t in detail["api_tokens"]] == [stored.token_prefix]
    assert plaintext not in str(detail)

    patched = await admin.patch(
        f"/admin/users/{user['id']}", json={"max_concurrent_bots": 5, "data": {"plan": "pro"}}
    )
    assert patched.status_code == 200 and patched.json()["max_concurrent_bots"] == 5
    assert patched.json()["data"] == {"plan": "pro"}

    page = (await admin.get("/admin/users", params={"skip": 0, "limit": 10})).json()
    assert [u["email"] for u in page] == ["ada@example.com"]
    assert (await admin.get("/admin/users", params={"skip": 1})).json() == []

    assert (await admin.delete(f"/admin/tokens/{token.json()['id']}")).status_code == 204
    assert (await admin.get(f"/admin/users/{user['id']}/tokens")).json()[0]["revoked"] is True
    assert (await admin.delete("/admin/tokens/999999")).status_code == 404

    assert (await admin.delete(f"/admin/users/{user['id']}")).status_code == 204
    assert (await admin.get(f"/admin/users/{user['id']}")).status_code == 404
    assert (await admin.post(f"/admin/users/{user['id']}/tokens")).status_code == 404


async def test_email_conflict_and_validation(admin):
    a = (await admin.post("/admin/users", json={"email": "a@example.com"})).json()
    await admin.post("/admin/users", json={"email": "b@example.com"})
    clash = await admin.patch(f"/admin/users/{a['id']}", json={"email": "b@example.com"})
    assert clash.status_code == 409
    assert (await admin.post("/admin/users", json={"email": "not-an-email"})).status_code == 422
    assert (
        await admin.post("/admin/users", json={"email": "c@example.com", "max_concurrent_bots": -1})
    ).status_code == 422
    assert (
        await admin.post("/admin/users", json={"email": "c@example.com", "role": "root"})
    ).status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/users"),
        ("GET", "/admin/users"),
        ("GET", "/admin/users/1"),
        ("GET", "/admin/users/email/a@example.com"),
        ("PATCH", "/admin/users/1"),
        ("DELETE", "/admin/users/1"),
        ("POST", "/admin/users/1/tokens"),
        ("GET", "/admin/users/1/tokens"),
        ("DELETE", "/admin/tokens/1"),
    ],
)
async def test_every_admin_route_needs_the_admin_key(admin_service, method, path):
    async with httpx.AsyncClient(base_url=admin_service.base_url, timeout=10) as client:
        missing = await client.request(method, path, json={"email": "x@example.com"})
        wrong = await client.request(
            method, path, json={"email": "x@example.com"}, headers={"X-Admin-API-Key": "wrong"}
        )
    assert missing.status_code == 401 and "X-Admin-API-Key" in missing.json()["detail"]
    assert wrong.status_code == 403


async def test_revocation_is_published_for_other_processes(admin, redis, make_user, db):
    user_id, token = await make_user()
    token_id = (await admin.get(f"/admin/users/{user_id}/tokens")).json()[0]["id"]
    pubsub = redis.pubsub()
    await pubsub.subscribe(REVOCATION_CHANNEL)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    assert (await admin.delete(f"/admin/tokens/{token_id}")).status_code == 204
    message = None
    for _ in range(50):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message:
            break
    await pubsub.aclose()
    assert message is not None and message["data"] == hash_token(token)


async def test_deleting_a_user_revokes_their_tokens_everywhere(admin, redis, make_user):
    user_id, token = await make_user()
    pubsub = redis.pubsub()
    await pubsub.subscribe(REVOCATION_CHANNEL)
    await pubsub.get_message(timeout=1)
    assert (await admin.delete(f"/admin/users/{user_id}")).status_code == 204
    message = None
    for _ in range(50):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message:
            break
    await pubsub.aclose()
    assert message is not None and message["data"] == hash_token(token)


async def test_webhook_set_by_the_user(admin_service, make_user, admin):
    user_id, token = await make_user()
    async with httpx.AsyncClient(base_url=admin_service.base_url, timeout=10) as client:
        ok = await client.put(
            "/user/webhook",
            json={"webhook_url": "https://93.184.215.14/vexa"},
            headers={"X-API-Key": token},
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["data"]["webhook_url"] == "https://93.184.215.14/vexa"
        bad = await client.put("/user/webhook", json={"webhook_url": "ftp://x"}, headers={"X-API-Key": token})
        assert bad.status_code == 422
        assert (
            await client.put("/user/webhook", json={"webhook_url": "https://a.example"})
        ).status_code == 401
        wrong = await client.put(
            "/user/webhook", json={"webhook_url": "https://a.example"}, headers={"X-API-Key": "nope"}
        )
        assert wrong.status_code == 403
    stored = (await admin.get(f"/admin/users/{user_id}")).json()["data"]
    assert stored == {"webhook_url": "https://93.184.215.14/vexa"}  # the secret is never in users.data


def test_refuses_to_start_without_admin_token(service_env):
    env = {k: v for k, v in os.environ.items() if k != "ADMIN_API_TOKEN"}
    env.update({k: v for k, v in service_env.items() if k != "ADMIN_API_TOKEN"})
    result = subprocess.run(
        [sys.executable, "-m", "vexa", "serve", "admin", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ADMIN_API_TOKEN is not set" in result.stderr
    assert "Traceback" not in result.stderr


async def test_cli_bootstrap_creates_user_and_working_token(service_env, admin, db):
    env = {**os.environ, **service_env}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "vexa", "admin", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    out = await asyncio.to_thread(
        cli, "create-user", "--email", "cli@example.com", "--max-concurrent-bots", "4"
    )
    assert out.startswith("created user id=")
    again = await asyncio.to_thread(cli, "create-user", "--email", "cli@example.com")
    assert again.startswith("exists user id=")
    token = await asyncio.to_thread(cli, "create-token", "--email", "cli@example.com")
    assert len(token) == 40
    user = (await admin.get("/admin/users/email/cli@example.com")).json()
    assert user["max_concurrent_bots"] == 4
    tokens = (await admin.get(f"/admin/users/{user['id']}/tokens")).json()
    assert [t["token_prefix"] for t in tokens] == [token[:6]]
