"""`vexa serve bot-manager` as a real process: health, and no bot outlives it (STAND-IN bots)."""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
from bots_helpers import standin_command, wait_for, wait_status

from vexa.testing.processes import ServiceProcess

pytestmark = pytest.mark.timeout(120)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (it is the manager's to reap, and the manager is gone).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_service_process_stops_its_bots_on_sigterm(service_env, port, tmp_path, make_user, db, redis):
    _, token = await make_user()
    env = {
        **service_env,
        "BOT_COMMAND": json.dumps(standin_command("lifecycle")),
        "BOT_LOG_DIR": str(tmp_path / "bot-logs"),
        "RECONCILE_INTERVAL_S": "1",
    }
    proc = ServiceProcess("bot-manager", port, env, log_path=tmp_path / "bot-manager.log")
    await asyncio.to_thread(proc.start, 60)
    try:
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=20) as client:
            health = await client.get("/health")
            assert health.status_code == 200 and health.json()["orchestrator"] == "process"
            resp = await client.post(
                "/bots",
                json={"platform": "zoom", "native_meeting_id": "123456789"},
                headers={"X-API-Key": token},
            )
            assert resp.status_code == 201, resp.text
            mid = resp.json()["id"]
            await wait_status(db, mid, "active")
            pid = int(await wait_for(lambda: redis.get(f"standin:{mid}:pid"), what="bot pid"))
            assert _alive(pid)
            # One log file per bot, and the user's key never appears in the manager's log.
            assert (tmp_path / "bot-logs" / f"{resp.json()['bot_container_id']}.log").exists()
    finally:
        code = await asyncio.to_thread(proc.stop)
    assert code in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
    assert not _alive(pid)
    meeting = await wait_status(db, mid, "completed", limit_s=5)
    assert meeting.data["completion_reason"] == "stopped"
    assert meeting.data["status_transition"][-1]["source"] == "shutdown"
    assert token not in (tmp_path / "bot-manager.log").read_text()
