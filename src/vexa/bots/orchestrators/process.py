"""Bots as child processes of the manager: the default, needing nothing but Python.

Each bot is ``BOT_COMMAND`` (``python -m vexa bot``) with ``BOT_CONFIG`` in its
environment, in its own process group so a stop reaches Chromium too. A waiter
task per child notices the exit at once and tells the manager through
``on_exit``; at shutdown every child is stopped, so no bot outlives its
manager. Only one manager may use this orchestrator against a database: the
handles live in this process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from vexa.bots.orchestrators.base import BotInfo, BotSpec, BotStartError, Orchestrator
from vexa.bots.settings import BotManagerSettings

log = logging.getLogger("vexa.bots.process")

# The manager's own secrets a bot has no business seeing.
_WITHHELD_ENV = frozenset(
    {"ADMIN_API_TOKEN", "WEBHOOK_SECRET", "DATABASE_URL", "DB_PASSWORD", "INTERNAL_API_SECRET", "BOT_CONFIG"}
)


@dataclass
class _Child:
    handle: str
    spec: BotSpec
    proc: asyncio.subprocess.Process
    log_path: Path
    log_file: IO[bytes]
    created_at: str
    exit_code: int | None = None
    waiter: asyncio.Task[None] | None = field(default=None, repr=False)


class ProcessOrchestrator(Orchestrator):
    kind = "process"
    bots_die_with_manager = True

    def __init__(self, settings: BotManagerSettings) -> None:
        super().__init__()
        self.command = list(settings.bot_command)
        self.log_dir = settings.resolved_log_dir()
        self._children: dict[str, _Child] = {}
        self._closing = False

    def log_path(self, handle: str) -> Path | None:
        child = self._children.get(handle)
        return child.log_path if child else None

    def _env(self, spec: BotSpec) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _WITHHELD_ENV}
        env["BOT_CONFIG"] = spec.bot_config_json
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("HF_HUB_OFFLINE", "1")
        return env

    async def start(self, spec: BotSpec) -> str:
        if self._closing:
            raise BotStartError("bot-manager is shutting down")
        handle = f"{spec.name}-{secrets.token_hex(4)}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{handle}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115, ASYNC230 - local file, closed when the child exits
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                env=self._env(spec),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log_file.close()
            raise BotStartError(f"could not start bot command {self.command[0]!r}: {exc}") from exc
        child = _Child(handle, spec, proc, log_path, log_file, datetime.now(UTC).isoformat())
        child.waiter = asyncio.create_task(self._wait(child), name=f"bot-waiter-{handle}")
        self._children[handle] = child
        log.info(
            "started bot %s for meeting %s (pid %s, log %s)", handle, spec.meeting_id, proc.pid, log_path
        )
        return handle

    async def _wait(self, child: _Child) -> None:
        code = await child.proc.wait()
        child.exit_code = code
        child.log_file.close()
        log.info("bot %s exited with code %s", child.handle, code)
        if self.on_exit is not None and not self._closing:
            try:
                await self.on_exit(child.handle, code)
            except Exception:
                log.exception("exit handler failed for bot %s", child.handle)

    def _signal(self, child: _Child, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, sig)

    async def stop(self, handle: str, timeout_s: float = 10.0) -> None:
        child = self._children.get(handle)
        if child is None:
            return
        if child.proc.returncode is None:
            self._signal(child, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(child.proc.wait()), timeout_s)
            except TimeoutError:
                log.warning("bot %s ignored SIGTERM for %.1fs; killing it", handle, timeout_s)
                self._signal(child, signal.SIGKILL)
                await child.proc.wait()
        # Let the waiter run its exit handler before the handle is forgotten.
        if child.waiter is not None and child.waiter is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(child.waiter), 10)
        self._children.pop(handle, None)

    def forget(self, handle: str) -> None:
        """Drop an exited child's record (after the manager has dealt with its meeting)."""
        child = self._children.get(handle)
        if child is not None and child.proc.returncode is not None:
            self._children.pop(handle, None)

    def _info(self, child: _Child) -> BotInfo:
        running = child.proc.returncode is None
        return BotInfo(
            handle=child.handle,
            state="running" if running else "exited",
            labels=child.spec.labels(),
            name=child.handle,
            created_at=child.created_at,
            exit_code=child.proc.returncode,
        )

    async def status(self, handle: str) -> BotInfo | None:
        child = self._children.get(handle)
        return self._info(child) if child else None

    async def list(self) -> list[BotInfo]:
        return [self._info(c) for c in list(self._children.values())]

    async def close(self) -> None:
        self._closing = True
        await asyncio.gather(
            *(self.stop(h, timeout_s=5.0) for h in list(self._children)), return_exceptions=True
        )
