"""`vexa serve gateway`: run the api-gateway with uvicorn until SIGTERM."""

from __future__ import annotations

import sys

import uvicorn

from vexa.gateway.settings import GatewaySettings
from vexa.logs import setup_logging


def run(host: str = "127.0.0.1", port: int = 8056) -> None:
    settings = GatewaySettings()
    setup_logging("api-gateway", settings.log_level)
    try:
        from vexa.gateway.app import create_app

        app = create_app(settings)
    except RuntimeError as exc:  # no database / Redis configured: say so plainly, no traceback
        print(f"api-gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, ws_max_size=1024 * 1024)
