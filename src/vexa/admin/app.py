"""admin-api: users, API tokens and the user's webhook URL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from vexa.admin import routes, user_routes
from vexa.admin.settings import AdminSettings
from vexa.auth import TokenVerifier
from vexa.db import Database

log = logging.getLogger(__name__)


def create_app(settings: AdminSettings | None = None) -> FastAPI:
    """Build the app; raises RuntimeError at once when ADMIN_API_TOKEN is missing."""
    settings = settings or AdminSettings()
    admin_token = settings.require_admin_token()
    db_url, redis_url = (
        settings.async_database_url(),
        settings.redis_url(),
    )  # fail fast, with the config's message

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(db_url, pool_size=settings.db_pool_size)
        redis = Redis.from_url(redis_url, decode_responses=True)
        verifier = TokenVerifier(db.sessionmaker, cache_ttl_s=settings.auth_cache_ttl_s)
        await verifier.start_revocation_listener(redis)
        app.state.db, app.state.redis, app.state.token_verifier = db, redis, verifier
        log.info("admin-api ready")
        try:
            yield
        finally:
            await verifier.stop()
            await redis.aclose()
            await db.dispose()

    app = FastAPI(
        title="Vexa admin API",
        version="1.0",
        description="Users and API tokens. Every /admin route needs X-Admin-API-Key.",
        lifespan=lifespan,
    )
    app.state.admin_api_token = admin_token
    app.state.settings = settings

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "Internal error in admin-api"}, status_code=500)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": "admin-api"}

    app.include_router(routes.router)
    app.include_router(user_routes.router)
    return app
