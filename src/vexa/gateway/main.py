"""`vexa serve gateway`: run the api-gateway with uvicorn until SIGTERM."""

from __future__ import annotations

from vexa.gateway.settings import GatewaySettings
from vexa.service import serve


def run(host: str = "127.0.0.1", port: int = 8056) -> None:
    from vexa.gateway.app import create_app

    serve("api-gateway", GatewaySettings(), create_app, host, port, ws_max_size=1024 * 1024)
