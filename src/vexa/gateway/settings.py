"""api-gateway settings: upstream Vexa's downstream URL names plus timeouts and WebSocket limits."""

from __future__ import annotations

from pydantic import Field

from vexa.config import DataSettings


class GatewaySettings(DataSettings):
    """The gateway needs the database and Redis too: it authenticates keys and fans out live events."""

    admin_api_url: str = Field("http://127.0.0.1:8057", alias="ADMIN_API_URL")
    bot_manager_url: str = Field("http://127.0.0.1:8080", alias="BOT_MANAGER_URL")
    transcription_collector_url: str = Field("http://127.0.0.1:8123", alias="TRANSCRIPTION_COLLECTOR_URL")
    connect_timeout_s: float = Field(
        5.0, alias="GATEWAY_CONNECT_TIMEOUT_S", description="Connecting to a downstream service."
    )
    request_timeout_s: float = Field(
        30.0, alias="GATEWAY_REQUEST_TIMEOUT_S", description="Waiting for a downstream answer (then 504)."
    )
    max_connections: int = Field(
        200, alias="GATEWAY_MAX_CONNECTIONS", description="Pooled downstream connections."
    )
    ws_queue_size: int = Field(
        256,
        alias="WS_QUEUE_SIZE",
        description="Messages buffered per WebSocket client before it is dropped as slow.",
    )
    ws_per_message_deflate: bool = Field(
        False,
        alias="WS_PER_MESSAGE_DEFLATE",
        description="Compress live events per client (permessage-deflate): costs CPU per subscriber.",
    )
    ws_max_meetings: int = Field(
        100, alias="WS_MAX_MEETINGS_PER_CONNECTION", description="Subscriptions one WebSocket may hold."
    )
    rate_limit_per_key: float = Field(
        600,
        ge=0,
        alias="RATE_LIMIT_PER_KEY",
        description="Requests a minute one API key may make on average (0: no per-key limit).",
    )
    rate_limit_key_burst: int = Field(
        120, ge=0, alias="RATE_LIMIT_KEY_BURST", description="Requests one API key may make at once."
    )
    rate_limit_per_ip: float = Field(
        1200,
        ge=0,
        alias="RATE_LIMIT_PER_IP",
        description="Requests a minute one client address may make on average (0: no per-address limit).",
    )
    rate_limit_ip_burst: int = Field(
        240, ge=0, alias="RATE_LIMIT_IP_BURST", description="Requests one client address may make at once."
    )
    public_metrics: bool = Field(
        False,
        alias="GATEWAY_PUBLIC_METRICS",
        description="Also serve /metrics on the public API port (off: it would show internals to anyone).",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        alias="GATEWAY_METRICS_PORT",
        description="Internal port for /metrics (unset: none; compose and Kubernetes use 9102).",
    )
    metrics_host: str = Field("127.0.0.1", alias="GATEWAY_METRICS_HOST")
