"""Rate limits hold across two gateway processes sharing one Redis (real processes, real Valkey).

Limits are checked before authentication, so made-up keys are enough: an allowed request
answers 403 (unknown key), a limited one 429 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_helpers import ClosedPort, start_gateway  # type: ignore[import-not-found]
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from vexa.testing.processes import ServiceProcess

pytestmark = pytest.mark.timeout(120)

# 6 a minute refill one token per 10 s: nothing measurable refills while the test runs.
LIMITS = {
    "RATE_LIMIT_PER_KEY": "6",
    "RATE_LIMIT_KEY_BURST": "5",
    "RATE_LIMIT_PER_IP": "6",
    "RATE_LIMIT_IP_BURST": "9",
}


@pytest.fixture
def two_gateways(
    service_env: dict[str, str], admin_api: ServiceProcess, tmp_session_dir: Path, redis
) -> Iterator[list[ServiceProcess]]:
    closed = [ClosedPort(), ClosedPort()]
    procs: list[ServiceProcess] = []
    try:
        for i in range(2):
            procs.append(
                start_gateway(
                    service_env,
                    tmp_session_dir / "logs" / f"gateway-limited-{i}.log",
                    ADMIN_API_URL=admin_api.base_url,
                    BOT_MANAGER_URL=closed[0].url,
                    TRANSCRIPTION_COLLECTOR_URL=closed[1].url,
                    **LIMITS,
                )
            )
        yield procs
    finally:
        for proc in procs:
            proc.stop()
        for port in closed:
            port.close()


async def test_limits_per_key_and_per_address_hold_across_two_gateways(two_gateways, redis):
    a, b = (httpx.AsyncClient(base_url=g.base_url, timeout=10) for g in two_gateways)
    async with a, b:
        # One key, alternating between the replicas: 5 (its burst) pass in all, not 5 on each.
        codes = []
        for i in range(8):
            resp = await (a, b)[i % 2].get("/meetings", headers={"X-API-Key": "key-one"})
            codes.append(resp.status_code)
            if resp.status_code == 429:
                assert int(resp.headers["Retry-After"]) >= 1
                assert "Rate limit" in resp.json()["detail"]
        assert codes == [403] * 5 + [429] * 3

        # Another key has its own bucket, but the address's (9) is shared: 4 more pass, then none.
        other = [(await b.get("/meetings", headers={"X-API-Key": "key-two"})).status_code for _ in range(4)]
        assert other == [403] * 4
        third = await a.get("/meetings", headers={"X-API-Key": "key-three"})
        assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
        assert (await b.get("/bots/status")).status_code == 429  # no key: the address limit alone
        assert (await a.get("/health")).status_code == 200  # probes are never limited

        # The WebSocket handshake draws from the same buckets.
        url = two_gateways[1].base_url.replace("http://", "ws://") + "/ws?api_key=key-four"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        assert refused.value.response.status_code == 429
        assert int(refused.value.response.headers["Retry-After"]) >= 1

    # Only hashes of keys name the buckets.
    names = [k async for k in redis.scan_iter("vexa:ratelimit:*")]
    assert names and not any("key-one" in n or "key-two" in n for n in names)
