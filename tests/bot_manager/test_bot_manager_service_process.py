"""`vexa serve bot-manager` as a real process: health, and no bot outlives it (STAND-IN bots)."""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
from bot_manager_helpers import get_meeting, standin_command, wait_for, wait_status
from sqlalchemy import text

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


async def test_a_killed_managers_bots_are_adopted_or_stopped_by_the_next(
    service_env, port, tmp_path, make_user, db, redis
):
    """SIGKILL leaves bots running: the next manager keeps those of active meetings, stops the rest."""
    _, token = await make_user()
    env = {
        **service_env,
        "BOT_COMMAND": json.dumps(standin_command("lifecycle")),
        "BOT_LOG_DIR": str(tmp_path / "bot-logs"),
        "RECONCILE_INTERVAL_S": "0.5",
    }
    first = ServiceProcess("bot-manager", port, env, log_path=tmp_path / "bot-manager-1.log")
    await asyncio.to_thread(first.start, 60)
    ids, pids = [], []
    try:
        async with httpx.AsyncClient(base_url=first.base_url, timeout=20) as client:
            for native in ("123456789", "987654321"):
                resp = await client.post(
                    "/bots",
                    json={"platform": "zoom", "native_meeting_id": native},
                    headers={"X-API-Key": token},
                )
                assert resp.status_code == 201, resp.text
                ids.append(resp.json()["id"])
            for mid in ids:
                await wait_status(db, mid, "active")
                pids.append(int(await wait_for(lambda m=mid: redis.get(f"standin:{m}:pid"), what="pid")))
    finally:
        first.kill()
    assert all(_alive(p) for p in pids)  # nobody stopped them
    kept, ended = ids
    async with db.engine.begin() as conn:  # the second meeting ended while no manager ran
        await conn.execute(text("UPDATE meetings SET status = 'completed' WHERE id = :m"), {"m": ended})

    second = ServiceProcess("bot-manager", port, env, log_path=tmp_path / "bot-manager-2.log")
    await asyncio.to_thread(second.start, 60)
    try:
        await wait_for(lambda: asyncio.sleep(0, not _alive(pids[1])), limit_s=15, what="orphan stopped")
        await asyncio.sleep(1.5)  # three reconcile passes: the adopted bot's meeting stays active
        assert (await get_meeting(db, kept)).status == "active" and _alive(pids[0])
        async with httpx.AsyncClient(base_url=second.base_url, timeout=20) as client:
            resp = await client.delete("/bots/zoom/123456789", headers={"X-API-Key": token})
            assert resp.status_code == 202, resp.text
        meeting = await wait_status(db, kept, "completed")
        assert meeting.data["completion_reason"] == "stopped"
        await wait_for(lambda: asyncio.sleep(0, not _alive(pids[0])), limit_s=15, what="adopted bot exit")
    finally:
        await asyncio.to_thread(second.stop)
    assert not any(_alive(p) for p in pids)
    assert "adopted bot" in (tmp_path / "bot-manager-2.log").read_text()
