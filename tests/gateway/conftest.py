"""admin-api and api-gateway as real child processes against the session's PostgreSQL and Valkey.

The bot-manager and collector are deliberately *not running* here (their URLs
point at closed ports), which is how "downstream down → 503" is tested; the
tests that need them live in test_gateway_downstreams.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_helpers import ClosedPort, HungServiceStandIn, start_gateway  # type: ignore[import-not-found]

from vexa.embedded import free_port
from vexa.testing.processes import ServiceProcess


@pytest.fixture(scope="session")
def admin_api(admin_service: ServiceProcess) -> ServiceProcess:
    """The gateway's admin-api: the same process the admin tests use."""
    return admin_service


@pytest.fixture(scope="session")
def gateway(
    service_env: dict[str, str], admin_api: ServiceProcess, tmp_session_dir: Path
) -> Iterator[ServiceProcess]:
    """Gateway → real admin-api; bot-manager and collector URLs point at ports nobody listens on."""
    closed = [ClosedPort(), ClosedPort()]
    proc = start_gateway(
        service_env,
        tmp_session_dir / "logs" / "gateway.log",
        ADMIN_API_URL=admin_api.base_url,
        BOT_MANAGER_URL=closed[0].url,
        TRANSCRIPTION_COLLECTOR_URL=closed[1].url,
        WS_QUEUE_SIZE="8",
        # Many tests (the fuzzer above all) share this gateway from one address: rate limits are
        # tested on gateways of their own (test_gateway_rate_limits.py).
        RATE_LIMIT_PER_KEY="0",
        RATE_LIMIT_PER_IP="0",
    )
    try:
        yield proc
    finally:
        proc.stop()
        for port in closed:
            port.close()


@pytest.fixture(scope="module")
def collector_gateway(service_env, admin_api, tmp_session_dir) -> Iterator[ServiceProcess]:
    """A gateway with a running collector (the bot-manager is down); one per test module."""
    env = {**service_env, "RECORDINGS_DIR": str(tmp_session_dir / "gw-recordings")}
    collector = ServiceProcess(
        "collector", free_port(), env, log_path=tmp_session_dir / "logs" / "gw-collector.log"
    ).start()
    gateway = start_gateway(
        service_env,
        tmp_session_dir / "logs" / "gateway-collector.log",
        ADMIN_API_URL=admin_api.base_url,
        BOT_MANAGER_URL=f"http://127.0.0.1:{free_port()}",
        TRANSCRIPTION_COLLECTOR_URL=collector.base_url,
        RATE_LIMIT_PER_KEY="0",  # the fuzzer sends hundreds of requests; limits have their own tests
        RATE_LIMIT_PER_IP="0",
    )
    try:
        yield gateway
    finally:
        gateway.stop()
        collector.stop()


@pytest.fixture(scope="session")
def admin_headers(service_env: dict[str, str]) -> dict[str, str]:
    return {"X-Admin-API-Key": service_env["ADMIN_API_TOKEN"]}


@pytest.fixture
def hung_service() -> Iterator[HungServiceStandIn]:
    stand_in = HungServiceStandIn()
    try:
        yield stand_in
    finally:
        stand_in.close()
