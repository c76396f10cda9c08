"""`vexa serve gateway`: run the api-gateway with uvicorn until SIGTERM."""

from __future__ import annotations

import gc

from vexa.gateway.settings import GatewaySettings
from vexa.service import serve

# Each open WebSocket holds ~200 long-lived objects (server protocol, ASGI scope, tasks), so
# 10,000 subscribers are ~2 million objects that the cyclic garbage collector, with CPython's
# default thresholds (700, 10, 10), scanned again and again: measured at 10,000 subscribers,
# more than half of the gateway's CPU and multi-second pauses in the middle of a fan-out.
# Young collections every 50,000 net allocations let a fan-out's short-lived objects die by
# reference counting first, so few reach the old generation and full scans become rare.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    gc.freeze()  # the modules and app built so far are never garbage: keep them out of every scan
    gc.set_threshold(*GC_THRESHOLDS)


def run(host: str = "127.0.0.1", port: int = 8056) -> None:
    from vexa.gateway.app import create_app

    settings = GatewaySettings()
    tune_gc()
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
