"""Shared by the benches (gateway, ws, api, ui, ...): stores + services as real processes on loopback.

Uses DATABASE_URL / REDIS_URL when set (a fresh database is not created then:
the benches add their own user), otherwise starts an embedded PostgreSQL and
Valkey in a temporary folder and migrates it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text

from vexa.auth import generate_token, hash_token
from vexa.config import DataSettings
from vexa.db import Database
from vexa.db.migrate import upgrade
from vexa.embedded import EmbeddedPostgres, EmbeddedValkey, free_port
from vexa.testing.processes import ServiceProcess

ADMIN_TOKEN = "bench-admin-token-0123456789"


def has_service(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@contextlib.contextmanager
def stores() -> Iterator[tuple[str, str]]:
    settings = DataSettings()
    with tempfile.TemporaryDirectory(prefix="vexa-bench-") as d:
        Path(d).chmod(0o755)
        pg = vk = None
        try:
            if settings.has_database():
                db_url = settings.async_database_url()
            else:
                pg = EmbeddedPostgres(Path(d) / "pg", database="vexa").start()
                db_url = pg.url
            if settings.has_redis():
                redis_url = settings.redis_url()
            else:
                vk = EmbeddedValkey(Path(d) / "valkey", persist=False).start()
                redis_url = vk.url
            db_url = db_url.replace("postgresql://", "postgresql+asyncpg://", 1)
            upgrade(db_url)
            yield db_url, redis_url
        finally:
            if vk is not None:
                vk.stop()
            if pg is not None:
                pg.stop()


def service_env(db_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "ADMIN_API_TOKEN": ADMIN_TOKEN,
        "LOG_LEVEL": "WARNING",
        # The benches measure throughput from one address with one key: no request rate limits.
        "RATE_LIMIT_PER_KEY": "0",
        "RATE_LIMIT_PER_IP": "0",
        **extra,
    }


def start(service: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    return ServiceProcess(service, free_port(), env, log_path=log_dir / f"{service}.log").start()


@contextlib.contextmanager
def api_services(
    env: dict[str, str], log_dir: Path
) -> Iterator[tuple[ServiceProcess, ServiceProcess, ServiceProcess]]:
    """Collector, admin-api and a gateway in front of both (the REST path); stopped in reverse."""
    procs: list[ServiceProcess] = []
    try:
        procs.append(start("collector", env, log_dir))
        procs.append(start("admin", env, log_dir))
        collector, admin = procs
        upstreams = {"TRANSCRIPTION_COLLECTOR_URL": collector.base_url, "ADMIN_API_URL": admin.base_url}
        procs.append(start("gateway", {**env, **upstreams}, log_dir))
        yield collector, admin, procs[2]
    finally:
        for proc in reversed(procs):
            proc.stop()


async def make_user_with_meeting(
    db_url: str, native: str = "abc-defg-hij", meetings: int = 1
) -> tuple[int, str, int]:
    """A user, a token and ``meetings`` meetings (the last one active); returns the active meeting id."""
    db = Database(db_url, pool_size=1)
    token = generate_token()
    try:
        async with db.engine.begin() as conn:
            user_id = (
                await conn.execute(
                    text("INSERT INTO users (email, max_concurrent_bots) VALUES (:e, 5) RETURNING id"),
                    {"e": f"bench-{token[:8]}@example.com"},
                )
            ).scalar_one()
            await conn.execute(
                text("INSERT INTO api_tokens (token_hash, token_prefix, user_id) VALUES (:h, :p, :u)"),
                {"h": hash_token(token), "p": token[:6], "u": user_id},
            )
            meeting_id = 0
            for i in range(meetings):
                status = "active" if i == meetings - 1 else "completed"
                meeting_id = (
                    await conn.execute(
                        text(
                            "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
                            "VALUES (:u, 'google_meet', :n, :s) RETURNING id"
                        ),
                        {"u": user_id, "n": native, "s": status},
                    )
                ).scalar_one()
    finally:
        await db.dispose()
    return user_id, token, meeting_id


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def run(coro) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    asyncio.run(coro)
