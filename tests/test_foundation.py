"""The shared pieces every service builds on: schema constraints, auth, platforms, stream schema."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from vexa.auth import TokenVerifier, hash_token
from vexa.platforms import Platform, meeting_url, native_id_problem
from vexa.streams import SessionStartMessage, TranscriptionMessage, parse_payload, to_fields


async def _insert_meeting(db, user_id: int, status: str, native: str = "abc-defg-hij") -> int:
    async with db.engine.begin() as conn:
        return (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
                    "VALUES (:u, 'google_meet', :n, :s) RETURNING id"
                ),
                {"u": user_id, "n": native, "s": status},
            )
        ).scalar_one()


async def test_one_active_meeting_per_native_id(db, make_user):
    user_id, _ = await make_user()
    await _insert_meeting(db, user_id, "active")
    with pytest.raises(IntegrityError):
        await _insert_meeting(db, user_id, "requested")
    # Finished meetings do not block a new one.
    await _insert_meeting(db, user_id, "completed")
    await _insert_meeting(db, user_id, "failed")


async def test_concurrent_inserts_only_one_wins(db, make_user):
    user_id, _ = await make_user()

    async def attempt() -> bool:
        try:
            await _insert_meeting(db, user_id, "requested", native="xyz-abcd-efg")
            return True
        except IntegrityError:
            return False

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert results.count(True) == 1


async def test_token_verifier_hashed_lookup_and_revocation(db, make_user):
    user_id, token = await make_user()
    verifier = TokenVerifier(db.sessionmaker, cache_ttl_s=60)
    user = await verifier.verify(token)
    assert user is not None and user.user_id == user_id
    assert await verifier.verify(token + "x") is None
    assert await verifier.verify(None) is None
    async with db.engine.begin() as conn:
        stored = (await conn.execute(text("SELECT token_hash FROM api_tokens"))).scalar_one()
        assert stored == hash_token(token) and token not in stored
        await conn.execute(text("UPDATE api_tokens SET revoked = true"))
    # Cached until told; the revocation message clears it.
    assert await verifier.verify(token) is not None
    verifier.forget(hash_token(token))
    assert await verifier.verify(token) is None


def test_native_id_validation_and_urls():
    assert native_id_problem(Platform.google_meet, "abc-defg-hij") is None
    assert "3-4-3" in native_id_problem("google_meet", "abc-def-hij")
    assert native_id_problem("zoom", "123456789") is None
    assert native_id_problem("zoom", "12ab") is not None
    assert native_id_problem("teams", "1234567890123") is None
    assert native_id_problem("skype", "x") is not None
    assert meeting_url("zoom", "123456789", "pw1") == "https://zoom.us/j/123456789?pwd=pw1"
    assert (
        meeting_url("google_meet", "abc-defg-hij", base_url="http://127.0.0.1:8099")
        == "http://127.0.0.1:8099/abc-defg-hij"
    )
    assert meeting_url("teams", "1234567890", "p", base_url="http://127.0.0.1:1/") == (
        "http://127.0.0.1:1/meet/1234567890?p=p"
    )


def test_stream_schema_round_trip():
    msg = TranscriptionMessage(
        uid="s1",
        platform="zoom",
        meeting_id="123456789",
        token="t",
        segments=[{"start": 0.0, "end": 1.5, "text": "hello", "language": "en", "completed": True}],
    )
    parsed = parse_payload(to_fields(msg)["payload"])
    assert parsed == msg
    start = parse_payload(
        '{"type":"session_start","uid":"s1","platform":"zoom","meeting_id":"1","token":"t",'
        '"start_timestamp":"2026-01-01T00:00:00Z"}'
    )
    assert isinstance(start, SessionStartMessage)
    for bad in [
        "not json",
        '{"type":"transcription"}',
        '{"type":"nope","uid":"u"}',
        '{"type":"transcription","uid":"u","platform":"p","meeting_id":"m","token":"t",'
        '"segments":[{"start":"x","end":1,"text":"a"}]}',
    ]:
        with pytest.raises(ValidationError):
            parse_payload(bad)


async def test_revocation_listener_survives_a_dropped_connection(db, redis, redis_url, make_user):
    from redis.asyncio import Redis as AsyncRedis

    from vexa.auth import publish_revocation

    _, token = await make_user()
    verifier = TokenVerifier(db.sessionmaker, cache_ttl_s=600)
    listener_redis = AsyncRedis.from_url(redis_url, client_name="revocation-test")
    await verifier.start_revocation_listener(listener_redis)
    loop = asyncio.get_running_loop()

    async def listener_ids() -> set[str]:
        return {c["id"] for c in await redis.client_list() if c.get("name") == "revocation-test"}

    try:
        first = await listener_ids()
        assert first
        for client_id in first:  # drop the listener's connection, as a Redis restart would
            await redis.client_kill_filter(_id=client_id)
        deadline = loop.time() + 15
        while loop.time() < deadline and not (await listener_ids() - first):
            await asyncio.sleep(0.1)
        assert await listener_ids() - first, "listener did not resubscribe"
        # Cached again, then revoked in the database: only the pushed revocation can evict it.
        assert await verifier.verify(token) is not None
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE api_tokens SET revoked = true"))
        assert await verifier.verify(token) is not None
        await publish_revocation(redis, hash_token(token))
        deadline = loop.time() + 5
        while loop.time() < deadline and await verifier.verify(token) is not None:
            await asyncio.sleep(0.05)
        assert await verifier.verify(token) is None
    finally:
        await verifier.stop()
        await listener_redis.aclose()


async def test_a_revocation_during_a_key_check_is_not_undone_by_the_cache(db, redis, redis_url, make_user):
    """The check read the row before the revocation committed and finishes after it was announced."""
    from redis.asyncio import Redis as AsyncRedis

    from vexa.auth import publish_revocation

    _, token = await make_user()
    verifier = TokenVerifier(db.sessionmaker, cache_ttl_s=600)
    listener_redis = AsyncRedis.from_url(redis_url)
    await verifier.start_revocation_listener(listener_redis)
    try:
        async with db.engine.connect() as conn:
            tx = await conn.begin()  # the admin's revocation, in progress: holds the token row
            await conn.execute(text("SELECT id FROM api_tokens FOR UPDATE"))
            # The check reads the (still valid) row, then waits to record last_used_at.
            checking = asyncio.create_task(verifier.verify(token))
            await asyncio.sleep(0.3)
            assert not checking.done()
            await conn.execute(text("UPDATE api_tokens SET revoked = true"))
            await publish_revocation(redis, hash_token(token))
            await asyncio.sleep(0.5)  # the pushed revocation reaches the listener meanwhile
            await tx.commit()
        await checking
        assert await verifier.verify(token) is None  # not served from a cache filled by the stale read
    finally:
        await verifier.stop()
        await listener_redis.aclose()


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com", "data": {"note": "nul\x00inside"}},
        {"email": "a@example.com", "data": {"\ud9c2": 1}},
        {"email": "a@example.com", "name": "x\x00"},
    ],
)
def test_text_postgres_cannot_store_is_refused_at_validation(body):
    from vexa.schemas import UserCreate

    with pytest.raises(ValidationError):
        UserCreate(**body)


async def test_admin_lookup_by_unstorable_email_is_404(db, redis_url, database_url):
    import httpx

    from vexa.admin.app import create_app
    from vexa.admin.settings import AdminSettings

    settings = AdminSettings(DATABASE_URL=database_url, REDIS_URL=redis_url, ADMIN_API_TOKEN="t" * 20)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            answer = await client.get(
                "/admin/users/email/a%00b@example.com", headers={"X-Admin-API-Key": "t" * 20}
            )
            assert answer.status_code == 404, answer.text
            created = await client.post(
                "/admin/users",
                json={"email": "c@example.com", "data": {"k": "\u0000"}},
                headers={"X-Admin-API-Key": "t" * 20},
            )
            assert created.status_code == 422 and "NUL" in created.text


@pytest.mark.parametrize(
    ("platform", "native"),
    [
        ("zoom", "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"),  # Arabic-Indic digits
        ("teams", "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10"),  # full-width digits
        ("zoom", "12345678\u0669"),
    ],
)
def test_native_ids_are_ascii_only(platform: str, native: str) -> None:
    assert native_id_problem(platform, native) is not None
    assert native_id_problem(platform, "1234567890") is None


async def test_emails_are_unique_regardless_of_case(db, make_user):
    """Two users whose emails differ only in case would make every later lookup by email fail."""
    from vexa.admin import store

    await make_user(email="Dana@Example.com")
    with pytest.raises(IntegrityError):
        await make_user(email="dana@example.COM")
    async with db.sessionmaker() as session:
        found = await store.get_user_by_email(session, "DANA@example.com")
        assert found is not None and found.email == "Dana@Example.com"
        user, created = await store.create_user(session, email="dana@EXAMPLE.com")
        assert not created and user.id == found.id
