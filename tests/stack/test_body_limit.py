"""Request bodies over MAX_REQUEST_BODY_BYTES get 413 at the gateway and at every service, unread."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vexa.embedded import free_port
from vexa.testing.processes import ServiceProcess

pytestmark = pytest.mark.timeout(180)

GATEWAY_LIMIT = 64 * 1024
DEFAULT_LIMIT = 1024 * 1024
FIVE_MB = json.dumps({"platform": "zoom", "native_meeting_id": "123456789", "bot_name": "x" * 5_000_000})


@pytest.fixture(scope="module")
def services(
    service_env: dict[str, str], admin_service: ServiceProcess, tmp_session_dir: Path
) -> Iterator[dict[str, ServiceProcess]]:
    logs = tmp_session_dir / "logs"
    started: dict[str, ServiceProcess] = {"admin": admin_service}
    try:
        for name in ("collector", "bot-manager"):
            started[name] = ServiceProcess(
                name, free_port(), service_env, log_path=logs / f"limit-{name}.log"
            ).start()
        started["gateway"] = ServiceProcess(
            "gateway",
            free_port(),
            {
                **service_env,
                "MAX_REQUEST_BODY_BYTES": str(GATEWAY_LIMIT),
                "ADMIN_API_URL": admin_service.base_url,
                "BOT_MANAGER_URL": started["bot-manager"].base_url,
                "TRANSCRIPTION_COLLECTOR_URL": started["collector"].base_url,
            },
            log_path=logs / "limit-gateway.log",
        ).start()
        yield started
    finally:
        for name, proc in started.items():
            if name != "admin":  # the session's shared admin-api stops with the session
                proc.stop()


def _assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:200]
    assert "MAX_REQUEST_BODY_BYTES" in response.json()["detail"]


async def test_each_service_refuses_a_5mb_body(services, make_user, service_env):
    _, key = await make_user()
    user = {"X-API-Key": key, "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as client:
        at = {name: proc.base_url for name, proc in services.items()}
        _assert_413(await client.post(f"{at['gateway']}/bots", content=FIVE_MB, headers=user))
        _assert_413(await client.post(f"{at['bot-manager']}/bots", content=FIVE_MB, headers=user))
        _assert_413(
            await client.patch(
                f"{at['collector']}/meetings/google_meet/abc-defg-hij", content=FIVE_MB, headers=user
            )
        )
        admin = {"X-Admin-API-Key": service_env["ADMIN_API_TOKEN"], "Content-Type": "application/json"}
        _assert_413(await client.post(f"{at['admin']}/admin/users", content=FIVE_MB, headers=admin))


async def test_a_body_under_the_limit_still_reaches_validation(services, make_user):
    _, key = await make_user()
    body = json.dumps({"platform": "zoom", "native_meeting_id": "123456789", "bot_name": "x" * 60_000})
    assert len(body) < GATEWAY_LIMIT
    async with httpx.AsyncClient(base_url=services["gateway"].base_url, timeout=30) as client:
        response = await client.post("/bots", content=body, headers={"X-API-Key": key})
    assert response.status_code == 422  # bot_name is too long: parsed and validated, not refused unread


async def test_the_limit_is_a_setting(services, make_user):
    """100 KB: over the gateway's MAX_REQUEST_BODY_BYTES (64 KiB), under the default 1 MiB."""
    _, key = await make_user()
    body = json.dumps({"platform": "zoom", "native_meeting_id": "123456789", "bot_name": "x" * 100_000})
    assert GATEWAY_LIMIT < len(body) < DEFAULT_LIMIT
    async with httpx.AsyncClient(timeout=30) as client:
        _assert_413(
            await client.post(
                f"{services['gateway'].base_url}/bots", content=body, headers={"X-API-Key": key}
            )
        )
        direct = await client.post(
            f"{services['bot-manager'].base_url}/bots", content=body, headers={"X-API-Key": key}
        )
        assert direct.status_code == 422  # parsed, then refused by validation (bot_name too long)


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(services, make_user):
    """No Content-Length to go by: the bytes are counted as they arrive."""
    _, key = await make_user()

    async def chunks():
        for _ in range(80):  # 5 MiB in 64 KiB chunks
            yield b"x" * 65536

    async with httpx.AsyncClient(timeout=30) as client:
        for name in ("bot-manager", "gateway"):
            response = await client.post(
                f"{services[name].base_url}/bots", content=chunks(), headers={"X-API-Key": key}
            )
            _assert_413(response)
            assert (await client.get(f"{services[name].base_url}/health")).status_code == 200


def test_a_client_that_asks_first_is_refused_before_it_sends_the_body(services):
    """``Expect: 100-continue`` (what curl sends for large bodies): 413 instead of "100 Continue"."""
    gateway = services["gateway"]
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /bots HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-API-Key: whatever\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
        )
        started = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"100 Continue" not in answer
    assert time.monotonic() - started < 3
