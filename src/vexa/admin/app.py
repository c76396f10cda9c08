"""admin-api: users, API tokens and the user's webhook URL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vexa.admin import analytics, routes, user_routes
from vexa.admin.settings import AdminSettings
from vexa.metrics import add_metrics_route
from vexa.service import add_error_handler, data_services

log = logging.getLogger(__name__)


def create_app(settings: AdminSettings | None = None) -> FastAPI:
    """Build the app; raises RuntimeError at once when ADMIN_API_TOKEN is missing."""
    settings = settings or AdminSettings()
    admin_token = settings.require_admin_token()
    settings.async_database_url(), settings.redis_url()  # fail fast, with the config's message

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with data_services(settings, app):
            log.info("admin-api ready")
            yield

    app = FastAPI(
        title="Vexa admin API",
        version="1.0",
        description="Users and API tokens. Every /admin route needs X-Admin-API-Key.",
        lifespan=lifespan,
    )
    app.state.admin_api_token = admin_token
    app.state.settings = settings

    add_error_handler(app, "admin-api")

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": "admin-api"}

    add_metrics_route(app)  # process metrics (CPU, memory, open files) of the admin-api
    app.include_router(routes.router)
    app.include_router(analytics.read_only)
    app.include_router(analytics.admin_only)
    app.include_router(user_routes.router)
    return app
