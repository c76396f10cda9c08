"""Forwarding to the real bot-manager process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from gateway_helpers import start_gateway  # type: ignore[import-not-found]

from vexa.embedded import free_port
from vexa.testing.processes import ServiceProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def bots_gateway(service_env, admin_api, tmp_session_dir) -> Iterator[ServiceProcess]:
    manager = ServiceProcess(
        "bot-manager", free_port(), service_env, log_path=tmp_session_dir / "logs" / "gw-bot-manager.log"
    ).start()
    gateway = start_gateway(
        service_env,
        tmp_session_dir / "logs" / "gateway-bots.log",
        ADMIN_API_URL=admin_api.base_url,
        BOT_MANAGER_URL=manager.base_url,
        TRANSCRIPTION_COLLECTOR_URL=f"http://127.0.0.1:{free_port()}",
    )
    try:
        yield gateway
    finally:
        gateway.stop()
        manager.stop()


async def test_bot_routes_reach_the_bot_manager(bots_gateway, make_user):
    _, token = await make_user()
    headers = {"X-API-Key": token}
    async with httpx.AsyncClient(base_url=bots_gateway.base_url, timeout=10) as client:
        status = await client.get("/bots/status", headers=headers)
        assert status.status_code == 200 and status.json() == {"running_bots": []}
        missing = await client.delete("/bots/google_meet/abc-defg-hij", headers=headers)
        assert missing.status_code == 404 and "detail" in missing.json()
        reconfig = await client.put("/bots/zoom/123456789/config", json={"language": "de"}, headers=headers)
        assert reconfig.status_code == 404
