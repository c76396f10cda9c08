"""`vexa up`: the whole stack on one machine, each service its own process.

With no ``DATABASE_URL`` / ``REDIS_URL`` (nor the ``DB_*`` / ``REDIS_*`` names)
it starts a real embedded PostgreSQL and Valkey with their data under
``VEXA_HOME``. An ``ADMIN_API_TOKEN`` is generated once and kept in
``VEXA_HOME/admin_token`` (mode 0600) when none is configured. Services that die
are restarted with backoff; Ctrl-C stops everything, servers last.

Every port is fixed (see ``vexa.ports``): a port held by another program stops
the start with a message naming the port and its variable, before anything is
started. Children die with the supervisor even when it is SIGKILLed
(``vexa.children``), and ``VEXA_HOME/vexa.pid`` keeps a second stack from
starting on the same home (``vexa.runstate``).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from vexa.config import DataSettings, vexa_home
from vexa.db.migrate import upgrade
from vexa.embedded import EmbeddedPostgres, EmbeddedValkey
from vexa.logs import setup_logging
from vexa.ports import PortInUse, claim_port
from vexa.runstate import ProcessState, StackAlreadyRunning, StackLock, StackState
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


# Each process's port and the variable that sets it (named in "port in use" errors).
PORT_VARIABLES = {
    "collector": ("collector_port", "COLLECTOR_PORT"),
    "admin": ("admin_port", "ADMIN_PORT"),
    "bot-manager": ("bot_manager_port", "BOT_MANAGER_PORT"),
    "transcription": ("transcription_port", "TRANSCRIPTION_PORT"),
    "transcription-health": ("transcription_health_port", "TRANSCRIPTION_HEALTH_PORT"),
    "gateway": ("gateway_port", "GATEWAY_PORT"),
    "postgres": ("embedded_pg_port", "EMBEDDED_PG_PORT"),
    "valkey": ("embedded_redis_port", "EMBEDDED_REDIS_PORT"),
}


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
    any_free_ports: bool = False  # throwaway stacks only: move to free ports instead of failing
    postgres: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    admin_token: str = ""
    admin_token_path: Path | None = None
    state: StackState = field(default_factory=StackState)
    _lock: StackLock | None = None

    @property
    def gateway_url(self) -> str:
        return self.services["gateway"].base_url if "gateway" in self.services else ""

    def _claim_ports(self) -> dict[str, int]:
        """Every port this stack will bind, checked before anything starts."""
        s = self.settings
        wanted = ["collector", "admin", "bot-manager", "gateway"]
        if self.with_transcription:
            wanted += ["transcription", "transcription-health"]
        if not s.has_database():
            wanted.append("postgres")
        if not s.has_redis():
            wanted.append("valkey")
        ports: dict[str, int] = {}
        for name in wanted:
            attr, variable = PORT_VARIABLES[name]
            host = self.gateway_host if name == "gateway" else "127.0.0.1"
            port = claim_port(getattr(s, attr), variable, host=host, any_free=self.any_free_ports)
            if port in ports.values():  # two settings naming one port is a configuration error too
                other = next(n for n, p in ports.items() if p == port)
                raise PortInUse(port, variable, host, holder=f"this stack's {other}")
            ports[name] = port
        return ports

    def _start_stores(self, ports: dict[str, int]) -> tuple[str, str]:
        s = self.settings
        if s.has_database():
            db_url = s.async_database_url()
        else:
            self.postgres = EmbeddedPostgres(
                self.home / "postgres", port=ports["postgres"], database="vexa"
            ).start()
            db_url = self.postgres.url
            self._record("postgres", ports["postgres"], self.postgres.pid, str(self.postgres.log_path))
        if s.has_redis():
            redis_url = s.redis_url()
        else:
            self.valkey = EmbeddedValkey(self.home / "valkey", port=ports["valkey"]).start()
            redis_url = self.valkey.url
            self._record("valkey", ports["valkey"], self.valkey.pid, str(self.valkey.log_path))
        return db_url, redis_url

    def _record(self, name: str, port: int | None, pid: int | None, log_path: str | None) -> None:
        entry = self.state.processes.setdefault(name, ProcessState())
        entry.port, entry.pid, entry.log, entry.started_at = port, pid, log_path, time.time()
        if name == "gateway":
            entry.host = self.gateway_host
        self.state.save(self.home)

    def start(self) -> Stack:
        """Take the home's lock, check every port, then start stores and services in order.

        Raises ``StackAlreadyRunning`` or ``PortInUse`` before anything is started.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        self._lock = StackLock(self.home).acquire()
        try:
            ports = self._claim_ports()
        except BaseException:
            self._lock.release()
            raise
        try:
            self._start(ports)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, ports: dict[str, int]) -> None:
        s = self.settings
        self.state.save(self.home)
        db_url, redis_url = self._start_stores(ports)
        log.info("applying database migrations")
        upgrade(db_url.replace("postgresql://", "postgresql+asyncpg://", 1))
        self.admin_token, self.admin_token_path = load_admin_token(self.home, s.admin_api_token)
        health_port = ports.get("transcription-health", s.transcription_health_port)
        transcription_port = ports.get("transcription", s.transcription_port)
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "ADMIN_API_TOKEN": self.admin_token,
            "VEXA_HOME": str(self.home),
            "ADMIN_API_URL": f"http://127.0.0.1:{ports['admin']}",
            "BOT_MANAGER_URL": f"http://127.0.0.1:{ports['bot-manager']}",
            "TRANSCRIPTION_COLLECTOR_URL": f"http://127.0.0.1:{ports['collector']}",
            "BOT_MANAGER_CALLBACK_URL": f"http://127.0.0.1:{ports['bot-manager']}",
            "WHISPER_LIVE_URL": f"ws://127.0.0.1:{transcription_port}/ws",
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
            proc.start(timeout=120 if name == "transcription" else 60)
            self._record(name, ports[name], proc.pid, str(proc.log_path))

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
                    entry = self.state.processes[name]
                    entry.restarts += 1
                    entry.pid = None
                    entry.last_error = (
                        f"exited with {proc.proc.returncode} at {time.strftime('%Y-%m-%d %H:%M:%S')}"
                    )
                    self.state.save(self.home)
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
                        self._record(name, proc.port, proc.pid, str(proc.log_path))
                    except Exception as exc:
                        log.error("%s failed to restart: %s", name, exc)
                        entry.last_error = f"failed to restart: {exc}"
                        self.state.save(self.home)
            time.sleep(poll_s)

    def stop(self) -> None:
        for name in reversed(list(self.services)):
            code = self.services[name].stop()
            log.info("stopped %s (exit %s)", name, code)
        if self.valkey:
            self.valkey.stop()
        if self.postgres:
            self.postgres.stop()
        if self._lock is not None:
            for entry in self.state.processes.values():
                entry.pid = None
            self.state.stopped_at = time.time()
            self.state.save(self.home)
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_stack(with_transcription: bool = True, gateway_host: str = "127.0.0.1") -> None:
    settings = StackSettings()
    stack = Stack(settings=settings, with_transcription=with_transcription, gateway_host=gateway_host)
    setup_logging("stack", settings.log_level, log_file=stack.home / "logs" / "stack.log")
    try:
        stack.start()
    except (PortInUse, StackAlreadyRunning) as exc:
        log.error("%s", exc)
        print(f"vexa up: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
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
