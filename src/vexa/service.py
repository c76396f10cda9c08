"""Plumbing every HTTP service shares: its stores, its error handler, its uvicorn run.

Kept in one place so that a service's ``app.py`` shows only what is particular
to it (its routes and workers), and so every service fails the same way: a
missing setting is one clear line on stderr and exit code 2, never a traceback;
an unexpected error is a JSON 500 with no stack trace, logged once.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from sqlalchemy.exc import TimeoutError as PoolTimeout

from vexa.auth import TokenVerifier
from vexa.body_limit import BodySizeLimit
from vexa.config import DataSettings
from vexa.db import Database
from vexa.logs import setup_logging

log = logging.getLogger(__name__)


@dataclass
class DataServices:
    """A service's PostgreSQL engine, Redis client and API-key verifier."""

    db: Database
    redis: Redis
    verifier: TokenVerifier


@asynccontextmanager
async def data_services(
    settings: DataSettings, app: FastAPI | None = None, **redis_options: Any
) -> AsyncIterator[DataServices]:
    """Open the stores (revocation listener included) and close them in reverse order.

    With ``app``, they are also published on ``app.state`` as ``db``, ``redis`` and
    ``token_verifier`` (what ``vexa.auth.require_user`` looks for).
    """
    db = Database(settings.async_database_url(), pool_size=settings.db_pool_size)
    redis = Redis.from_url(settings.redis_url(), **{"decode_responses": True, **redis_options})
    verifier = TokenVerifier(db.sessionmaker, cache_ttl_s=settings.auth_cache_ttl_s)
    try:
        await verifier.start_revocation_listener(redis)
        if app is not None:
            app.state.db, app.state.redis, app.state.token_verifier = db, redis, verifier
        yield DataServices(db, redis, verifier)
    finally:
        await verifier.stop()
        with suppress(Exception):
            await redis.aclose()
        await db.dispose()


def add_error_handler(app: FastAPI, service: str) -> None:
    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every pooled database connection stayed busy past the pool's timeout: back-pressure,
        # not a bug, so say when to come back instead of answering 500.
        log.warning("database pool exhausted on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": f"{service} is busy; try again shortly"}, status_code=503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(asyncpg.PostgresConnectionError)
    @app.exception_handler(asyncpg.CannotConnectNowError)
    @app.exception_handler(ConnectionError)
    async def _database_unreachable(request: Request, exc: Exception) -> JSONResponse:
        # The plain asyncpg read pool (vexa.db.reads) raises these, not SQLAlchemy's errors.
        log.warning("database unreachable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(
            {"detail": f"{service} cannot reach its database; try again shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"Internal error in {service}"}, status_code=500)


def serve(
    service: str,
    settings: Any,
    create_app: Callable[[Any], FastAPI],
    host: str,
    port: int,
    **uvicorn_options: Any,
) -> None:
    """Build the app and run it until SIGTERM; configuration errors exit 2 with one line.

    Every service gets the same request-body cap here (``MAX_REQUEST_BODY_BYTES``).
    """
    setup_logging(service, settings.log_level)
    try:
        app = create_app(settings)
    except RuntimeError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_body_bytes)
    # Everything imported and built so far lives as long as the process: move it out of the
    # cyclic collector's reach, so its full passes under load scan only what requests allocate.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, **uvicorn_options)
