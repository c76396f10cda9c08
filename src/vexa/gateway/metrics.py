"""Prometheus metrics of the api-gateway: live-event fan-out, read from the hub at scrape time.

Nothing is counted on the publish path: the hub already keeps ``delivered`` and ``dropped``
and its watcher sets, and a custom collector turns them into metrics when Prometheus asks.

Where they are served: the gateway's port is the public API, so ``/metrics`` is NOT mounted
there unless ``GATEWAY_PUBLIC_METRICS=true``; ``GATEWAY_METRICS_PORT`` serves them on a
separate internal port (compose and Kubernetes set 9102 and do not publish it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vexa.gateway.hub import EventHub
from vexa.ports import PortInUse

log = logging.getLogger(__name__)


class HubCollector(Collector):
    """Subscribers, channels, deliveries and slow-client drops of the process's event hub."""

    def __init__(self) -> None:
        self.hub: EventHub | None = None

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        if hub is None:
            return
        yield GaugeMetricFamily(
            "vexa_gateway_ws_subscriptions",
            "WebSocket subscriptions: (client, meeting) pairs receiving live events.",
            value=hub.subscription_count,
        )
        yield GaugeMetricFamily(
            "vexa_gateway_ws_channels", "Meeting channels subscribed in Redis.", value=hub.channel_count
        )
        yield CounterMetricFamily(
            "vexa_gateway_ws_delivered", "Events queued to WebSocket clients.", value=hub.delivered
        )
        yield CounterMetricFamily(
            "vexa_gateway_ws_dropped",
            "WebSocket clients dropped as too slow (send queue full).",
            value=hub.dropped,
        )
        yield CounterMetricFamily(
            "vexa_gateway_ws_unconfirmed",
            "Meeting subscriptions refused because Redis did not confirm the channel in time.",
            value=hub.unconfirmed,
        )


HUB_COLLECTOR = HubCollector()
REGISTRY.register(HUB_COLLECTOR)


class MetricsServer:
    """prometheus-client's own HTTP server on the internal metrics port (a daemon thread)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.host)
        except OSError as exc:  # say which setting moves it, not a bare errno
            raise PortInUse(self.port, "GATEWAY_METRICS_PORT", self.host) from exc
        self.port = self._server.server_port
        log.info("gateway metrics on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
