"""Prometheus plumbing every service shares: the ``/metrics`` route and its exposition.

Each service declares its own metrics beside the code they describe (``vexa.<service>.metrics``)
in prometheus-client's process-wide registry. Counters and histograms move where the thing
happens; gauges that mirror state somebody else owns (stream lag, bots by status, WebSocket
subscribers) are read fresh at scrape time by the service's ``refresh`` hook, so the hot paths
carry no bookkeeping for them.

``/metrics`` is unauthenticated, as Prometheus expects: it is served on the internal service
ports only (admin, bot-manager, collector, the transcription health port). The gateway's port
is public, so it serves ``/metrics`` on a separate internal port unless
``GATEWAY_PUBLIC_METRICS`` says otherwise (``vexa.gateway.app``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

Refresh = Callable[[Request], Awaitable[None]]

# Seconds: from sub-second live paths up to the collector's settle-then-persist delay (~10 s+).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)


def exposition() -> bytes:
    """The text format of every metric in the process registry."""
    return generate_latest(REGISTRY)


def add_metrics_route(app: FastAPI, refresh: Refresh | None = None) -> None:
    """Serve ``GET /metrics``; ``refresh`` updates scrape-time gauges first (a failure is only logged)."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if refresh is not None:
            try:
                await refresh(request)
            except Exception as exc:  # a store being down must not hide the other metrics
                log.warning("metrics refresh failed: %s", type(exc).__name__)
        return Response(exposition(), media_type=CONTENT_TYPE)
