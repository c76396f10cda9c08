"""The soak's real stack on loopback: PostgreSQL, Valkey (AOF on), collectors and a bot-manager.

Every piece is a real process that the soak can SIGKILL or restart: collectors
come and go (each a new consumer in the group), the bot-manager is restarted on
the same port (its bots call back there), the stores restart on their own data.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

from vexa.db.migrate import upgrade
from vexa.embedded import EmbeddedPostgres, EmbeddedValkey, free_port
from vexa.testing.processes import ServiceProcess

COLLECTOR_ENV = {
    "REDIS_STREAM_BLOCK_MS": "200",
    "REDIS_STREAM_READ_COUNT": "50",
    "PENDING_MSG_TIMEOUT_MS": "1500",
    "PENDING_CLAIM_INTERVAL_S": "0.5",
    "BACKGROUND_TASK_INTERVAL": "0.5",
    "IMMUTABILITY_THRESHOLD": "1.5",
    "STREAM_TRIM_INTERVAL_S": "1",
    "DB_POOL_SIZE": "3",
}


class ChaosStack:
    def __init__(self, work_dir: Path, *, bot_lifetime_s: float) -> None:
        self.dir = work_dir
        self.logs = work_dir / "logs"
        self.pg = EmbeddedPostgres(work_dir / "pg", database="vexa")
        self.valkey = EmbeddedValkey(work_dir / "valkey", persist=True)
        self.collectors: list[ServiceProcess] = []
        self.manager: ServiceProcess | None = None
        self.manager_port = free_port()
        self.bot_lifetime_s = bot_lifetime_s
        self._started = 0

    @property
    def db_url(self) -> str:
        return self.pg.url.replace("postgresql://", "postgresql+asyncpg://", 1)

    @property
    def redis_url(self) -> str:
        return self.valkey.url

    def env(self, **extra: str) -> dict[str, str]:
        return {"DATABASE_URL": self.db_url, "REDIS_URL": self.redis_url, "LOG_LEVEL": "INFO", **extra}

    async def start_stores(self) -> None:
        await asyncio.to_thread(self.pg.start)
        await asyncio.to_thread(self.valkey.start)
        await asyncio.to_thread(upgrade, self.db_url)

    async def restart_redis(self) -> None:
        """SIGTERM (Valkey writes its AOF out), then the same server on the same data."""
        await asyncio.to_thread(self.valkey.stop)
        await asyncio.to_thread(self.valkey.start)

    async def restart_postgres(self) -> None:
        await asyncio.to_thread(self.pg.stop)
        await asyncio.to_thread(self.pg.start)

    # --- collectors -------------------------------------------------------------------------

    async def start_collector(self) -> ServiceProcess:
        self._started += 1
        proc = ServiceProcess(
            "collector",
            free_port(),
            self.env(**COLLECTOR_ENV),
            log_path=self.logs / f"collector-{self._started}.log",
        )
        await asyncio.to_thread(proc.start, 60)
        self.collectors.append(proc)
        return proc

    async def kill_collector(self, proc: ServiceProcess) -> str:
        """SIGKILL; returns the dead consumer's name (hostname-pid), whose pending entries others claim."""
        assert proc.proc is not None
        name = f"{socket.gethostname()}-{proc.proc.pid}"
        await asyncio.to_thread(proc.kill)
        self.collectors.remove(proc)
        return name

    # --- bot-manager --------------------------------------------------------------------------

    async def start_manager(self) -> ServiceProcess:
        env = self.env(
            BOT_COMMAND=json.dumps([sys.executable, "-m", "vexa.testing.standin_bot", "lifecycle"]),
            BOT_LOG_DIR=str(self.dir / "bot-logs"),
            RECONCILE_INTERVAL_S="1",
            MEETING_BASE_URL="http://127.0.0.1:9",
            STANDIN_MAX_LIFETIME_S=str(self.bot_lifetime_s),
        )
        proc = ServiceProcess("bot-manager", self.manager_port, env, log_path=self.logs / "bot-manager.log")
        await asyncio.to_thread(proc.start, 60)
        self.manager = proc
        return proc

    async def kill_manager(self) -> None:
        assert self.manager is not None
        await asyncio.to_thread(self.manager.kill)
        self.manager = None

    async def stop(self) -> None:
        for proc in list(self.collectors):
            await asyncio.to_thread(proc.stop)
        self.collectors.clear()
        if self.manager is not None:
            await asyncio.to_thread(self.manager.stop)
            self.manager = None
        await asyncio.to_thread(self.valkey.stop)
        await asyncio.to_thread(self.pg.stop)
