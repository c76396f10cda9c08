"""`vexa up` with nothing configured: embedded PostgreSQL + Valkey, every service, clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from vexa.embedded import free_port

PORT_VARS = (
    "GATEWAY_PORT",
    "ADMIN_PORT",
    "BOT_MANAGER_PORT",
    "COLLECTOR_PORT",
    "EMBEDDED_PG_PORT",
    "EMBEDDED_REDIS_PORT",
)


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.timeout(180)
def test_vexa_up_runs_the_stack_on_embedded_servers_and_stops_on_ctrl_c(tmp_path: Path):
    home = tmp_path / "home"
    ports = {name: free_port() for name in PORT_VARS}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_", "DB_"))}
    env.update({name: str(p) for name, p in ports.items()})
    env.update({"VEXA_HOME": str(home), "PYTHONUNBUFFERED": "1"})
    env.pop("ADMIN_API_TOKEN", None)
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vexa", "up", "--no-transcription"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "Vexa is up" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                time.sleep(0.3)
            assert "Vexa is up" in log.read_text(), log.read_text()
            assert f"Dashboard:     {gateway}/ui/" in log.read_text()

            token_file = home / "admin_token"
            assert token_file.stat().st_mode & 0o777 == 0o600
            admin = {"X-Admin-API-Key": token_file.read_text().strip()}
            with httpx.Client(base_url=gateway, timeout=10) as c:
                user = c.post("/admin/users", json={"email": "up@example.com"}, headers=admin)
                assert user.status_code == 201, user.text
                key = c.post(f"/admin/users/{user.json()['id']}/tokens", headers=admin).json()["token"]
                assert c.get("/meetings", headers={"X-API-Key": key}).json() == {"meetings": []}
            assert token_file.read_text().strip() not in log.read_text()  # the secret is never logged
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
    assert code == 0, log.read_text()
    # Everything it started is gone: services and both embedded servers.
    for name in ("GATEWAY_PORT", "ADMIN_PORT", "COLLECTOR_PORT", "EMBEDDED_PG_PORT", "EMBEDDED_REDIS_PORT"):
        assert not _port_open(ports[name]), name
