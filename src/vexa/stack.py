"""`vexa up`: the whole stack on one machine, each service its own process.

With no ``DATABASE_URL`` / ``REDIS_URL`` (nor the ``DB_*`` / ``REDIS_*`` names)
it starts a real embedded PostgreSQL and Valkey with their data under
``VEXA_HOME``. An ``ADMIN_API_TOKEN`` is generated once and kept in
``VEXA_HOME/admin_token`` (mode 0600) when none is configured. Services that die
are restarted with backoff; Ctrl-C stops everything, servers last.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from vexa.config import DataSettings, vexa_home
from vexa.db.migrate import upgrade
from vexa.embedded import EmbeddedPostgres, EmbeddedValkey, free_port
from vexa.logs import setup_logging
from vexa.testing.processes import ServiceProcess

log = logging.getLogger("vexa.stack")


class StackSettings(DataSettings):
    gateway_port: int = Field(8056, alias="GATEWAY_PORT")
    admin_port: int = Field(8057, alias="ADMIN_PORT")
    bot_manager_port: int = Field(8080, alias="BOT_MANAGER_PORT")
    collector_port: int = Field(8123, alias="COLLECTOR_PORT")
    transcription_port: int = Field(9090, alias="TRANSCRIPTION_PORT")
    transcription_health_port: int = Field(9091, alias="TRANSCRIPTION_HEALTH_PORT")
    embedded_pg_port: int = Field(5438, alias="EMBEDDED_PG_PORT")
    embedded_redis_port: int = Field(6389, alias="EMBEDDED_REDIS_PORT")
    admin_api_token: str | None = Field(None, alias="ADMIN_API_TOKEN")


def _port_or_free(port: int) -> int:
    """The wanted port when it is free, else any free one (a second stack on one machine)."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            return free_port()


def load_admin_token(home: Path, configured: str | None) -> tuple[str, Path | None]:
    """The configured token, or one generated once and kept under ``home``."""
    if configured:
        return configured, None
    path = home / "admin_token"
    if path.exists():
        return path.read_text().strip(), path
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, path


@dataclass
class Stack:
    """Embedded servers (if needed) plus one process per service."""

    settings: StackSettings = field(default_factory=StackSettings)
    home: Path = field(default_factory=vexa_home)
    with_transcription: bool = True
    gateway_host: str = "127.0.0.1"
    extra_env: dict[str, str] = field(default_factory=dict)
    postgres: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    admin_token: str = ""
    admin_token_path: Path | None = None

    @property
    def gateway_url(self) -> str:
        return self.services["gateway"].base_url if "gateway" in self.services else ""

    def _start_stores(self) -> tuple[str, str]:
        s = self.settings
        if s.has_database():
            db_url = s.async_database_url()
        else:
            self.postgres = EmbeddedPostgres(
                self.home / "postgres", port=_port_or_free(s.embedded_pg_port), database="vexa"
            ).start()
            db_url = self.postgres.url
        if s.has_redis():
            redis_url = s.redis_url()
        else:
            self.valkey = EmbeddedValkey(
                self.home / "valkey", port=_port_or_free(s.embedded_redis_port)
            ).start()
            redis_url = self.valkey.url
        return db_url, redis_url

    def start(self) -> Stack:
        s = self.settings
        self.home.mkdir(parents=True, exist_ok=True)
        db_url, redis_url = self._start_stores()
        log.info("applying database migrations")
        upgrade(db_url.replace("postgresql://", "postgresql+asyncpg://", 1))
        self.admin_token, self.admin_token_path = load_admin_token(self.home, s.admin_api_token)

        ports = {
            "collector": _port_or_free(s.collector_port),
            "admin": _port_or_free(s.admin_port),
            "bot-manager": _port_or_free(s.bot_manager_port),
            "transcription": _port_or_free(s.transcription_port),
            "gateway": _port_or_free(s.gateway_port),
        }
        health_port = _port_or_free(s.transcription_health_port)
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "ADMIN_API_TOKEN": self.admin_token,
            "VEXA_HOME": str(self.home),
            "ADMIN_API_URL": f"http://127.0.0.1:{ports['admin']}",
            "BOT_MANAGER_URL": f"http://127.0.0.1:{ports['bot-manager']}",
            "TRANSCRIPTION_COLLECTOR_URL": f"http://127.0.0.1:{ports['collector']}",
            "BOT_MANAGER_CALLBACK_URL": f"http://127.0.0.1:{ports['bot-manager']}",
            "WHISPER_LIVE_URL": f"ws://127.0.0.1:{ports['transcription']}/ws",
            "HEALTH_PORT": str(health_port),
            **self.extra_env,
        }
        logs = self.home / "logs"
        order = ["collector", "admin", "bot-manager"]
        if self.with_transcription:
            order.append("transcription")
        order.append("gateway")
        for name in order:
            host = self.gateway_host if name == "gateway" else "127.0.0.1"
            health = f"http://127.0.0.1:{health_port}/health" if name == "transcription" else None
            proc = ServiceProcess(
                name, ports[name], env, host=host, health_url=health, log_path=logs / f"{name}.log"
            )
            self.services[name] = proc
            log.info("starting %s on %s:%s (log %s)", name, host, ports[name], proc.log_path)
            try:
                proc.start(timeout=120 if name == "transcription" else 60)
            except Exception:
                self.stop()
                raise
        return self

    def supervise(self, poll_s: float = 1.0) -> None:
        """Restart services that exit; returns when SIGINT/SIGTERM arrives."""
        stop = False

        def _stop(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        backoff: dict[str, float] = {}
        while not stop:
            for name, proc in self.services.items():
                if proc.proc is not None and proc.proc.poll() is not None and not stop:
                    delay = min(30.0, backoff.get(name, 0.5) * 2)
                    backoff[name] = delay
                    log.error(
                        "%s exited with %s; restarting in %.1fs (log %s)",
                        name,
                        proc.proc.returncode,
                        delay,
                        proc.log_path,
                    )
                    time.sleep(delay)
                    try:
                        proc.stop()
                        proc.start(timeout=120)
                    except Exception as exc:
                        log.error("%s failed to restart: %s", name, exc)
            time.sleep(poll_s)

    def stop(self) -> None:
        for name in reversed(list(self.services)):
            code = self.services[name].stop()
            log.info("stopped %s (exit %s)", name, code)
        if self.valkey:
            self.valkey.stop()
        if self.postgres:
            self.postgres.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_stack(with_transcription: bool = True, gateway_host: str = "127.0.0.1") -> None:
    settings = StackSettings()
    setup_logging("stack", settings.log_level)
    stack = Stack(settings=settings, with_transcription=with_transcription, gateway_host=gateway_host)
    stack.start()
    where = f"kept in {stack.admin_token_path}" if stack.admin_token_path else "from ADMIN_API_TOKEN"
    print(
        f"\nVexa is up.\n"
        f"  Dashboard:     {stack.gateway_url}/ui/\n"
        f"  API gateway:   {stack.gateway_url}  (docs: {stack.gateway_url}/docs)\n"
        f"  Admin token:   {where}\n"
        f"  Logs:          {stack.home / 'logs'}\n"
        f"  Create a user: curl -X POST {stack.gateway_url}/admin/users -H 'X-Admin-API-Key: <token>' "
        f"-H 'Content-Type: application/json' -d '{{\"email\": \"me@example.com\"}}'\n"
        f"Press Ctrl-C to stop.\n",
        flush=True,
    )
    try:
        stack.supervise()
    finally:
        stack.stop()
