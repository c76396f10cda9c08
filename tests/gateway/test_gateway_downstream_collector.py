"""Forwarding to the real collector process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from gateway_helpers import start_gateway  # type: ignore[import-not-found]
from sqlalchemy import text

from vexa.embedded import free_port
from vexa.testing.processes import ServiceProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def collector_gateway(service_env, admin_api, tmp_session_dir) -> Iterator[ServiceProcess]:
    collector = ServiceProcess(
        "collector", free_port(), service_env, log_path=tmp_session_dir / "logs" / "gw-collector.log"
    ).start()
    gateway = start_gateway(
        service_env,
        tmp_session_dir / "logs" / "gateway-collector.log",
        ADMIN_API_URL=admin_api.base_url,
        BOT_MANAGER_URL=f"http://127.0.0.1:{free_port()}",
        TRANSCRIPTION_COLLECTOR_URL=collector.base_url,
    )
    try:
        yield gateway
    finally:
        gateway.stop()
        collector.stop()


async def test_meetings_and_transcripts_are_user_scoped(collector_gateway, make_user, db):
    owner_id, owner_token = await make_user()
    _, other_token = await make_user()
    async with db.engine.begin() as conn:
        meeting_id = (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
                    "VALUES (:u, 'google_meet', 'abc-defg-hij', 'completed') RETURNING id"
                ),
                {"u": owner_id},
            )
        ).scalar_one()
    async with httpx.AsyncClient(base_url=collector_gateway.base_url, timeout=10) as client:
        mine = await client.get("/meetings", headers={"X-API-Key": owner_token})
        assert mine.status_code == 200 and [m["id"] for m in mine.json()["meetings"]] == [meeting_id]
        theirs = await client.get("/meetings", headers={"X-API-Key": other_token})
        assert theirs.status_code == 200 and theirs.json()["meetings"] == []

        transcript = await client.get(
            "/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": owner_token}
        )
        assert transcript.status_code == 200 and transcript.json()["id"] == meeting_id
        denied = await client.get("/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": other_token})
        assert denied.status_code == 404
        patched = await client.patch(
            "/meetings/google_meet/abc-defg-hij",
            json={"data": {"name": "x"}},
            headers={"X-API-Key": other_token},
        )
        assert patched.status_code == 404
