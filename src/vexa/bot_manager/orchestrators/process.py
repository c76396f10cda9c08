"""Bots as child processes of the manager: the default, needing nothing but Python.

Each bot is ``BOT_COMMAND`` (``python -m vexa bot``) with ``BOT_CONFIG`` in its
environment, in its own process group so a stop reaches Chromium too. A waiter
task per child notices the exit at once and tells the manager through
``on_exit``; at shutdown every child is stopped, so no bot outlives its
manager's orderly exit.

A manager killed with SIGKILL cannot stop anything, and its bots keep running in
their own sessions. So every bot is also recorded on disk (``BOT_LOG_DIR/<handle>.json``:
pid, the process's start time, labels; no secrets) and a starting manager
``adopt()``s each recorded bot that is still the same process: it is watched
through a pidfd, stopped by process group, and listed like any other, so the
reconciler keeps it if its meeting is active and stops it otherwise. Only one
manager may use one ``BOT_LOG_DIR``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from vexa.bot_manager.orchestrators.base import BotInfo, BotSpec, BotStartError, Orchestrator
from vexa.bot_manager.settings import BotManagerSettings

log = logging.getLogger(__name__)

# The manager's own secrets a bot has no business seeing.
_WITHHELD_ENV = frozenset(
    {
        "ADMIN_API_TOKEN",
        "WEBHOOK_SECRET",
        "DATABASE_URL",
        "DB_PASSWORD",
        "INTERNAL_API_SECRET",
        "BOT_CONFIG",
        "BOT_TOKEN",
    }
)


@dataclass
class _Child:
    """One bot: started here (``proc``) or adopted from an earlier manager (``proc`` is None)."""

    handle: str
    labels: dict[str, str]
    pid: int
    start_ticks: int | None  # /proc start time: tells our bot from a later process reusing its pid
    log_path: Path
    created_at: str
    proc: asyncio.subprocess.Process | None = None
    log_file: IO[bytes] | None = None
    exit_code: int | None = None
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    waiter: asyncio.Task[None] | None = field(default=None, repr=False)


def _start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (None when the process is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


async def _wait_foreign(pid: int) -> None:
    """Until a process that is not our child exits (pidfd on Linux, polling elsewhere)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        while _start_ticks(pid) is not None:  # noqa: ASYNC110 - no pidfd: poll
            await asyncio.sleep(0.5)
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


class ProcessOrchestrator(Orchestrator):
    kind = "process"
    bots_die_with_manager = True

    def __init__(self, settings: BotManagerSettings) -> None:
        super().__init__()
        self.command = list(settings.bot_command)
        self.log_dir = settings.resolved_log_dir()
        self._children: dict[str, _Child] = {}
        self._closing = False

    def _env(self, spec: BotSpec) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _WITHHELD_ENV}
        env["BOT_CONFIG"] = spec.bot_config_json
        env["BOT_TOKEN"] = spec.bot_token
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("HF_HUB_OFFLINE", "1")
        return env

    def _record_path(self, handle: str) -> Path:
        return self.log_dir / f"{handle}.json"

    def _record(self, child: _Child) -> None:
        """Written before the manager relies on the bot, so a SIGKILL right after leaves a trace."""
        path = self._record_path(child.handle)
        tmp = path.with_suffix(".tmp")
        record = {
            "handle": child.handle,
            "pid": child.pid,
            "start_ticks": child.start_ticks,
            "labels": child.labels,
            "created_at": child.created_at,
            "log_path": str(child.log_path),
        }
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        tmp.replace(path)

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
        child = _Child(
            handle,
            spec.labels(),
            proc.pid,
            _start_ticks(proc.pid),
            log_path,
            datetime.now(UTC).isoformat(),
            proc=proc,
            log_file=log_file,
        )
        self._record(child)
        self._watch(child)
        log.info(
            "started bot %s for meeting %s (pid %s, log %s)", handle, spec.meeting_id, proc.pid, log_path
        )
        return handle

    def _watch(self, child: _Child) -> None:
        self._children[child.handle] = child
        child.waiter = asyncio.create_task(self._wait(child), name=f"bot-waiter-{child.handle}")

    async def adopt(self) -> list[BotInfo]:
        """Take over the bots an earlier manager of this ``BOT_LOG_DIR`` left running."""
        adopted: list[BotInfo] = []
        if not self.log_dir.is_dir():
            return adopted
        for path in sorted(self.log_dir.glob("vexa-bot-*.json")):
            try:
                record = json.loads(path.read_text())
                handle, pid = str(record["handle"]), int(record["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("ignoring unreadable bot record %s", path)
                path.unlink(missing_ok=True)
                continue
            if handle in self._children:
                continue
            ticks = _start_ticks(pid)
            if ticks is None or ticks != record.get("start_ticks"):
                path.unlink(missing_ok=True)  # gone (or the pid now belongs to something else)
                continue
            child = _Child(
                handle,
                {str(k): str(v) for k, v in (record.get("labels") or {}).items()},
                pid,
                ticks,
                Path(record.get("log_path") or self.log_dir / f"{handle}.log"),
                str(record.get("created_at") or ""),
            )
            self._watch(child)
            adopted.append(self._info(child))
            log.warning("adopted bot %s (pid %s) left running by an earlier bot-manager", handle, pid)
        return adopted

    async def _wait(self, child: _Child) -> None:
        if child.proc is not None:
            child.exit_code = await child.proc.wait()
        else:
            await _wait_foreign(child.pid)  # not our child: its exit code is not ours to read
        child.gone.set()
        if child.log_file is not None:
            child.log_file.close()
        self._record_path(child.handle).unlink(missing_ok=True)
        log.info("bot %s exited with code %s", child.handle, child.exit_code)
        if self.on_exit is not None and not self._closing:
            try:
                await self.on_exit(child.handle, child.exit_code)
            except Exception:
                log.exception("exit handler failed for bot %s", child.handle)

    def _signal(self, child: _Child, sig: int) -> None:
        if child.gone.is_set() or (child.proc is None and _start_ticks(child.pid) != child.start_ticks):
            return  # never signal a process group that is no longer this bot's
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)

    async def stop(self, handle: str, timeout_s: float = 10.0) -> None:
        child = self._children.get(handle)
        if child is None:
            return
        if not child.gone.is_set():
            self._signal(child, signal.SIGTERM)
            try:
                await asyncio.wait_for(child.gone.wait(), timeout_s)
            except TimeoutError:
                log.warning("bot %s ignored SIGTERM for %.1fs; killing it", handle, timeout_s)
                self._signal(child, signal.SIGKILL)
                await child.gone.wait()
        # Let the waiter run its exit handler before the handle is forgotten.
        if child.waiter is not None and child.waiter is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(child.waiter), 10)
        self._children.pop(handle, None)

    def _info(self, child: _Child) -> BotInfo:
        return BotInfo(
            handle=child.handle,
            state="exited" if child.gone.is_set() else "running",
            labels=child.labels,
            name=child.handle,
            created_at=child.created_at,
            exit_code=child.exit_code,
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
