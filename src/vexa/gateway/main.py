"""`vexa serve gateway`: run the api-gateway with uvicorn until SIGTERM."""

from __future__ import annotations

from vexa.gateway.settings import GatewaySettings
from vexa.service import serve


def run(host: str = "127.0.0.1", port: int = 8056) -> None:
    from vexa.gateway.app import create_app

    settings = GatewaySettings()
    serve(
        "api-gateway",
        settings,
        create_app,
        host,
        port,
        ws_max_size=1024 * 1024,
        # Off by default: each subscriber has its own compression context, so a live event
        # would be compressed once per subscriber instead of being sent as the same bytes.
        ws_per_message_deflate=settings.ws_per_message_deflate,
    )
