"""Real PostgreSQL and Redis for every test.

``DATABASE_URL`` / ``REDIS_URL`` from the environment are used when set;
otherwise this session starts its own embedded PostgreSQL and Valkey (about a
second). Either way the session gets a database of its own (created, migrated,
dropped at the end), and each test starts with empty tables and an empty Redis
database.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from vexa.auth import generate_token, hash_token
from vexa.config import to_asyncpg_url
from vexa.db import Database
from vexa.db.migrate import upgrade
from vexa.embedded import EmbeddedPostgres, EmbeddedValkey, free_port
from vexa.testing.processes import ServiceProcess

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TABLES = "transcriptions, meeting_sessions, meetings, api_tokens, users"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def tmp_session_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vexa-test-") as d:
        path = Path(d)
        path.chmod(0o755)
        yield path


@pytest.fixture(scope="session")
def pg_server_url(tmp_session_dir: Path) -> Iterator[str]:
    """A server-level URL (database ``postgres``)."""
    env = os.environ.get("DATABASE_URL")
    if env:
        base = _plain(to_asyncpg_url(env))
        yield base.rsplit("/", 1)[0] + "/postgres"
        return
    server = EmbeddedPostgres(tmp_session_dir / "pg", database="postgres").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test session (asyncpg SQLAlchemy URL)."""
    import asyncio

    name = f"vexa_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def _admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = to_asyncpg_url(pg_server_url.rsplit("/", 1)[0] + f"/{name}")
    upgrade(url)
    try:
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url(tmp_session_dir: Path) -> Iterator[str]:
    env = os.environ.get("REDIS_URL")
    if env:
        yield env
        return
    server = EmbeddedValkey(tmp_session_dir / "valkey", persist=False).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def service_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Environment for services started as child processes."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ADMIN_API_TOKEN": "test-admin-token-0123456789",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def admin_service(service_env: dict[str, str], tmp_session_dir: Path) -> Iterator[ServiceProcess]:
    """admin-api as a real process, shared by every test that needs one."""
    proc = ServiceProcess("admin", free_port(), service_env, log_path=tmp_session_dir / "logs" / "admin.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A clean database: every table emptied before the test."""
    database = Database(database_url, pool_size=5)
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    try:
        yield database
    finally:
        await database.dispose()


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A clean Redis database (FLUSHDB before the test)."""
    client = Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest_asyncio.fixture
async def make_user(db: Database):
    """Factory: ``await make_user(email=...)`` -> (user_id, plaintext token)."""

    async def _make(email: str | None = None, max_concurrent_bots: int = 3) -> tuple[int, str]:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        token = generate_token()
        async with db.engine.begin() as conn:
            user_id = (
                await conn.exec_driver_sql(
                    "INSERT INTO users (email, name, max_concurrent_bots) VALUES ($1, $2, $3) RETURNING id",
                    (email, email.split("@")[0], max_concurrent_bots),
                )
            ).scalar_one()
            await conn.exec_driver_sql(
                "INSERT INTO api_tokens (token_hash, token_prefix, user_id) VALUES ($1, $2, $3)",
                (hash_token(token), token[:6], user_id),
            )
        return user_id, token

    return _make
