"""What a running `vexa up` leaves in ``VEXA_HOME`` for the next command to read.

* ``vexa.pid`` is held with an exclusive ``flock`` for the supervisor's whole
  life. The kernel drops the lock when the process dies, however it dies, so a
  second `vexa up` on the same home can tell a live stack from a stale file
  without guessing from pids.
* ``run/stack.json`` describes each process (port, pid, start time, restarts,
  last exit) for `vexa status` and `vexa logs`; it is replaced atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


class StackAlreadyRunning(RuntimeError):
    def __init__(self, home: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"a Vexa stack is already running from VEXA_HOME={home} ({who}); "
            f"see `vexa status`, stop it first, or set VEXA_HOME to another folder"
        )
        self.pid = pid


def lock_path(home: Path) -> Path:
    return home / "vexa.pid"


def state_path(home: Path) -> Path:
    return home / "run" / "stack.json"


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip() or 0) or None
    return None


class StackLock:
    """The exclusive right to run a stack from one ``VEXA_HOME``."""

    def __init__(self, home: Path) -> None:
        self.path = lock_path(home)
        self.home = home
        self._fd: int | None = None

    def acquire(self) -> StackLock:
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StackAlreadyRunning(self.home, _read_pid(self.path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def running_supervisor(home: Path) -> int | None:
    """The pid of the live `vexa up` on ``home``, or None when none holds the lock."""
    path = lock_path(home)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(path) or -1
    finally:
        os.close(fd)  # closing also drops a shared lock we may have taken
    return None


@dataclass
class ProcessState:
    """One process of the stack as the supervisor last saw it."""

    port: int | None = None
    pid: int | None = None
    host: str = "127.0.0.1"
    started_at: float | None = None
    restarts: int = 0
    last_error: str | None = None
    log: str | None = None


@dataclass
class StackState:
    supervisor_pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    stopped_at: float | None = None
    processes: dict[str, ProcessState] = field(default_factory=dict)

    def save(self, home: Path) -> None:
        path = state_path(home)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls, home: Path) -> StackState | None:
        try:
            raw = json.loads(state_path(home).read_text())
        except (OSError, ValueError):
            return None
        processes = {name: ProcessState(**p) for name, p in raw.pop("processes", {}).items()}
        return cls(**raw, processes=processes)
