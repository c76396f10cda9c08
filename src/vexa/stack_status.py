"""`vexa status` and `vexa logs`: read what `vexa up` records in ``VEXA_HOME``.

Nothing here talks to the supervisor: it reads ``run/stack.json`` and the
lock (see ``vexa.runstate``), checks each pid, asks each HTTP service's
``/health`` with a short timeout, and reads log files where the stack wrote them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from vexa import pids
from vexa.runstate import ProcessState, StackState, running_supervisor

# Processes answering GET /health on their own port.
_HTTP = {"gateway", "admin", "bot-manager", "collector"}
_TAIL_BYTES = 64 * 1024


@dataclass
class Row:
    name: str
    state: str
    port: str
    pid: str
    uptime: str
    restarts: str
    last_error: str


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def last_error_line(log: Path) -> str | None:
    """The newest ERROR/CRITICAL line (or exception) near the end of ``log``."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - _TAIL_BYTES))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
            return line.strip()
    return None


def _health(entry: ProcessState) -> bool:
    host = "127.0.0.1" if entry.host in ("0.0.0.0", "::", "") else entry.host
    try:
        return httpx.get(f"http://{host}:{entry.port}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def rows(state: StackState, running: bool) -> list[Row]:
    now = time.time()
    out = []
    for name, entry in state.processes.items():
        alive = running and pids.alive(entry.pid)
        if not alive:
            what = "stopped" if not running else "down"
        elif name in _HTTP and entry.port and not _health(entry):
            what = "unhealthy"
        else:
            what = "running"
        error = entry.last_error or (last_error_line(Path(entry.log)) if entry.log else None) or "-"
        out.append(
            Row(
                name=name,
                state=what,
                port=str(entry.port or "-"),
                pid=str(entry.pid) if alive else "-",
                uptime=_duration(now - entry.started_at) if alive and entry.started_at else "-",
                restarts=str(entry.restarts),
                last_error=error if len(error) <= 100 else error[:97] + "...",
            )
        )
    return out


def render_status(home: Path) -> tuple[str, bool]:
    """The status report and whether a stack is running from ``home``."""
    supervisor = running_supervisor(home)
    state = StackState.load(home)
    if state is None:
        return f"No stack has run from VEXA_HOME={home} (start one with `vexa up`).", False
    if supervisor:
        head = (
            f"Vexa is running from VEXA_HOME={home}: supervisor pid {supervisor}, "
            f"up {_duration(time.time() - state.started_at)}"
        )
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.stopped_at or state.started_at))
        head = f"Vexa is not running from VEXA_HOME={home} (last run ended around {when})"
    table = rows(state, running=supervisor is not None)
    columns = ("SERVICE", "STATE", "PORT", "PID", "UPTIME", "RESTARTS", "LAST ERROR")
    cells = [columns] + [(r.name, r.state, r.port, r.pid, r.uptime, r.restarts, r.last_error) for r in table]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns) - 1)]
    lines = [head, ""]
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    lines.append("")
    lines.append(f"Logs: {home / 'logs'} (`vexa logs <service> [-f]`)")
    return "\n".join(lines), supervisor is not None


def log_file(home: Path, name: str) -> Path:
    """Where ``name``'s log is: as the last run recorded it, else the standard place."""
    state = StackState.load(home)
    if state is not None and name in state.processes and state.processes[name].log:
        return Path(state.processes[name].log or "")
    return home / "logs" / f"{name}.log"


def known_logs(home: Path) -> list[str]:
    state = StackState.load(home)
    names = set(state.processes) if state else set()
    names.update(p.stem for p in (home / "logs").glob("*.log"))
    return sorted(names)


def tail(path: Path, lines: int) -> str:
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        f.seek(max(0, end - max(_TAIL_BYTES, lines * 400)))
        text = f.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def follow(path: Path, poll_s: float = 0.5) -> Iterator[str]:
    """New text appended to ``path`` from now on; starts over if the file is replaced or truncated."""
    f = open(path, "rb")  # noqa: SIM115 - reopened on rotation, closed in finally
    try:
        f.seek(0, os.SEEK_END)
        while True:
            chunk = f.read()
            if chunk:
                yield chunk.decode(errors="replace")
                continue
            try:
                replaced = os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
                shrunk = os.stat(path).st_size < f.tell()
            except FileNotFoundError:
                replaced, shrunk = False, False
            if replaced or shrunk:
                f.close()
                f = open(path, "rb")  # noqa: SIM115
            time.sleep(poll_s)
    finally:
        f.close()
