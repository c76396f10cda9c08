"""api-gateway: the single public entry (HTTP forwarding + the live-event WebSocket)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from sqlalchemy.exc import DBAPIError, OperationalError

from vexa.gateway import hot, routes, ws
from vexa.gateway.docs import add_offline_docs
from vexa.gateway.hub import EventHub
from vexa.gateway.metrics import HUB_COLLECTOR, MetricsServer
from vexa.gateway.proxy import Forwarder
from vexa.gateway.ratelimit import Bucket, RateLimiter, RateLimitMiddleware
from vexa.gateway.settings import GatewaySettings
from vexa.gateway.ui import install as install_dashboard
from vexa.hot_routes import HotRoutes
from vexa.metrics import add_metrics_route
from vexa.service import add_error_handler, data_services

log = logging.getLogger(__name__)

HUB_CLIENT_NAME = "vexa-gateway-hub"

DESCRIPTION = """\
The public Vexa API. Send your key as **X-API-Key**; admin routes need **X-Admin-API-Key**.

Live events: connect a WebSocket to `/ws` (key in `X-API-Key` or `?api_key=`) and send
`{"action": "subscribe", "meetings": [{"platform": "google_meet", "native_id": "abc-defg-hij"}]}`.
"""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    redis_url = settings.redis_url()
    settings.async_database_url()  # fail fast with a clear message

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The hub's own named connection, so operators (and tests) can find it in CLIENT LIST.
        hub_redis = Redis.from_url(redis_url, socket_keepalive=True, client_name=HUB_CLIENT_NAME)
        async with data_services(settings, app, decode_responses=False, socket_keepalive=True):
            hub: EventHub | None = None
            hub = EventHub(hub_redis, on_slow=lambda watcher: ws._drop_slow(hub, watcher))  # type: ignore[arg-type]
            await hub.start()
            forwarder = Forwarder(
                connect_timeout_s=settings.connect_timeout_s,
                request_timeout_s=settings.request_timeout_s,
                max_connections=settings.max_connections,
            )
            app.state.hub, app.state.forwarder = hub, forwarder
            app.state.rate_limiter = RateLimiter(
                app.state.redis,
                per_key=Bucket(settings.rate_limit_per_key, settings.rate_limit_key_burst),
                per_ip=Bucket(settings.rate_limit_per_ip, settings.rate_limit_ip_burst),
            )
            HUB_COLLECTOR.hub = hub
            metrics_server = None
            if settings.metrics_port is not None:
                metrics_server = MetricsServer(settings.metrics_host, settings.metrics_port)
                metrics_server.start()
                app.state.metrics_port = metrics_server.port
            log.info(
                "api-gateway ready: admin=%s bot-manager=%s collector=%s",
                settings.admin_api_url,
                settings.bot_manager_url,
                settings.transcription_collector_url,
            )
            try:
                yield
            finally:
                if metrics_server is not None:
                    await asyncio.to_thread(metrics_server.stop)  # shutdown() waits for its poll loop
                await forwarder.aclose()
                await hub.stop()
                await hub_redis.aclose()

    app = FastAPI(
        title="Vexa API",
        version="1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local assets below, not a CDN
        redoc_url=None,
    )
    add_offline_docs(app)
    app.state.settings = settings
    app.state.rate_limiter = None  # set in the lifespan, once Redis is open
    # Added first, so it runs inside the rate limits (and the body cap added by vexa.service).
    app.add_middleware(HotRoutes, state=app.state, routes=hot.ROUTES)
    app.add_middleware(RateLimitMiddleware, limiter_of=lambda: app.state.rate_limiter)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    async def _store_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse({"detail": "Database unavailable; try again shortly"}, status_code=503)

    add_error_handler(app, "api-gateway")

    @app.get("/health", tags=["health"])
    async def health(request: Request) -> dict[str, object]:
        hub: EventHub = request.app.state.hub
        return {"status": "ok", "service": "api-gateway", "ws_channels": hub.channel_count}

    if settings.public_metrics:
        add_metrics_route(app)
    app.include_router(routes.public)
    app.include_router(routes.admin)
    app.include_router(ws.router)
    install_dashboard(app)
    return app
