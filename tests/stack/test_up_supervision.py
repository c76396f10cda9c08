"""`vexa up` as an operator runs it: fixed ports across restarts, one stack per home, no orphans.

Each test runs the real command (embedded PostgreSQL and Valkey, every service
but transcription) on ports picked for the test, as fixed ports.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
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


class Up:
    """One `vexa up --no-transcription` child with its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.out = open(log, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vexa", "up", "--no-transcription"],
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while "Vexa is up" not in self.text():
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.3)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.out.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


@pytest.fixture
def up_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_", "DB_"))}
    env.update({name: str(free_port()) for name in PORT_VARS})
    env.update({"VEXA_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"})
    env.pop("ADMIN_API_TOKEN", None)
    return env


@pytest.fixture
def ups() -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in started:
        up.kill()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vexa", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


async def _burst(url: str, clients: int, requests: int) -> list[httpx.AsyncClient]:
    """``requests`` GETs over ``clients`` connections, left open so the server closes them first."""
    pool = [httpx.AsyncClient(timeout=10) for _ in range(clients)]

    async def one(client: httpx.AsyncClient) -> None:
        for _ in range(requests // clients):
            assert (await client.get(url)).status_code == 200

    await asyncio.gather(*(one(c) for c in pool))
    return pool


@pytest.mark.timeout(300)
def test_restart_after_a_burst_keeps_ports_and_a_second_up_is_refused(
    tmp_path: Path, up_env: dict[str, str], ups: list[Up]
):
    gateway_port = int(up_env["GATEWAY_PORT"])
    first = Up(up_env, tmp_path / "first.log")
    ups.append(first)
    first.wait_up()

    second = _cli(up_env, "up", "--no-transcription")
    assert second.returncode == 1, second.stdout + second.stderr
    assert "already running" in second.stderr and str(first.proc.pid) in second.stderr
    assert up_env["VEXA_HOME"] in second.stderr

    status = _cli(up_env, "status")
    assert status.returncode == 0, status.stderr
    gateway_row = next(line for line in status.stdout.splitlines() if line.startswith("gateway "))
    assert "running" in gateway_row and str(gateway_port) in gateway_row
    logs = _cli(up_env, "logs", "collector")
    assert logs.returncode == 0 and "transcription-collector ready" in logs.stdout

    async def burst_then_stop() -> None:
        pool = await _burst(f"http://127.0.0.1:{gateway_port}/health", clients=50, requests=1000)
        first.proc.send_signal(signal.SIGINT)  # stop while the clients still hold their connections
        assert await asyncio.to_thread(first.wait) == 0, first.text()
        for client in pool:
            await client.aclose()

    asyncio.run(burst_then_stop())
    time_wait = [
        c
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_TIME_WAIT and c.laddr and c.laddr.port == gateway_port
    ]
    assert time_wait, "the burst should leave the gateway's port in TIME_WAIT"

    restarted = Up(up_env, tmp_path / "restarted.log")
    ups.append(restarted)
    restarted.wait_up()
    assert f"http://127.0.0.1:{gateway_port}" in restarted.text()
    assert httpx.get(f"http://127.0.0.1:{gateway_port}/health", timeout=5).status_code == 200
    restarted.proc.send_signal(signal.SIGINT)
    assert restarted.wait() == 0, restarted.text()
    stopped = _cli(up_env, "status")
    assert stopped.returncode == 3 and "not running" in stopped.stdout


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie; a process reaped between the two questions is gone, not alive."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(200)
def test_a_sigkilled_supervisor_leaves_no_process(tmp_path: Path, up_env: dict[str, str], ups: list[Up]):
    up = Up(up_env, tmp_path / "up.log")
    ups.append(up)
    up.wait_up()
    children = psutil.Process(up.proc.pid).children(recursive=True)
    names = " ".join(" ".join(c.cmdline()) for c in children)
    for expected in ("serve gateway", "serve collector", "serve admin", "serve bot-manager", "postgres"):
        assert expected in names, names

    up.proc.send_signal(signal.SIGKILL)
    up.wait()
    deadline = time.monotonic() + 1.0
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [c for c in alive if _alive(c)]
        time.sleep(0.05)
    assert not alive, [" ".join(c.cmdline()) for c in alive]
    for name in PORT_VARS:
        assert not _port_open(int(up_env[name])), name

    # The next `vexa up` on this home is not blocked by anything the killed one left.
    again = Up(up_env, tmp_path / "again.log")
    ups.append(again)
    again.wait_up()
    again.proc.send_signal(signal.SIGINT)
    assert again.wait() == 0, again.text()


@pytest.mark.timeout(120)
def test_a_port_held_by_another_program_stops_up_with_a_clear_error(up_env: dict[str, str]):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(up_env["GATEWAY_PORT"])))
        holder.listen()
        result = _cli(up_env, "up", "--no-transcription")
    assert result.returncode == 1
    assert f"port {up_env['GATEWAY_PORT']}" in result.stderr and "GATEWAY_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not _port_open(int(up_env["EMBEDDED_PG_PORT"]))  # refused before anything started
    assert not (Path(up_env["VEXA_HOME"]) / "vexa.pid").exists()
