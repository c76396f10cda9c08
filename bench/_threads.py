"""Where a bot's CPU goes: CPU and wake-ups per thread of its process tree, between two readings.

Why per thread: a bot's CPU is mostly Chromium's, and the thread tells whose work it is. The
page's playback runs on an ``AudioOutputDevice`` thread in the renderer per output stream (an
``<audio>`` element playing a MediaStream, an AudioContext) and on the audio service's
``AudioWorkerThread``; the bot's capture worker is the renderer's ``DedicatedWorker``; the bot's
own Python is ``python``. Wake-ups are printed beside CPU because on these VMs every wake-up
costs ~100 µs of CPU whatever the thread then does (README "Figures", Bots round 7), so a thread
woken 100 times a second costs ~1% of a core for that alone.

A wake-up here is a voluntary context switch: the thread went to sleep and something woke it.
Threads are grouped by process kind and thread name (the kernel keeps 15 characters of it).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

_TICKS = os.sysconf("SC_CLK_TCK")


def process_kind(cmd: list[str]) -> str:
    """python, chromium-browser, or Chromium's ``--type`` (a utility process by its service)."""
    kind = next((a.split("=", 1)[1] for a in cmd if a.startswith("--type=")), None)
    if kind is None:
        name = os.path.basename(cmd[0]) if cmd else "?"
        return "chromium-browser" if "chrom" in name else name
    service = next((a.split("=", 1)[1] for a in cmd if a.startswith("--utility-sub-type=")), None)
    if kind == "utility" and service:
        # audio.mojom.AudioService -> utility-audio
        return f"utility-{service.split('.')[0]}"
    return kind


@dataclass(frozen=True)
class ThreadReading:
    group: str  # "<process kind>/<thread name>"
    cpu_s: float  # user + system, since the thread started
    sleeps: int  # voluntary context switches, since the thread started


def read_threads(procs: list[psutil.Process]) -> dict[tuple[int, int], ThreadReading]:
    """Every thread of these processes, keyed by (pid, tid); threads that vanish meanwhile are skipped."""
    out: dict[tuple[int, int], ThreadReading] = {}
    for proc in procs:
        try:
            kind = process_kind(proc.cmdline())
            tids = os.listdir(f"/proc/{proc.pid}/task")
        except (psutil.Error, OSError):
            continue
        for tid in tids:
            try:
                with open(f"/proc/{proc.pid}/task/{tid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{proc.pid}/task/{tid}/status") as f:
                    lines = [line for line in f if line.startswith("voluntary_ctxt_switches")]
                sleeps = int(lines[0].split()[1])
            except (OSError, IndexError):
                continue
            # The name sits in parentheses and may hold spaces; the fields after it are plain.
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu_s = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
            out[(proc.pid, int(tid))] = ThreadReading(f"{kind}/{name}", cpu_s, sleeps)
    return out


def thread_usage(
    before: dict[tuple[int, int], ThreadReading],
    after: dict[tuple[int, int], ThreadReading],
    seconds: float,
    least_pct: float = 0.05,
) -> dict[str, dict[str, float]]:
    """Per group, CPU % of a core, wake-ups a second and thread count over the threads present at
    the second reading; groups under ``least_pct`` that woke less than once a second are left out, and
    the rest are ordered by CPU, largest first."""
    groups: dict[str, list[float]] = {}
    for key, end in after.items():
        # A thread started since the first reading (a playback thread, once the page plays) spent
        # all of its time in between.
        start = before.get(key, ThreadReading(end.group, 0.0, 0))
        g = groups.setdefault(end.group, [0.0, 0.0, 0])
        g[0] += (end.cpu_s - start.cpu_s) / seconds * 100
        g[1] += (end.sleeps - start.sleeps) / seconds
        g[2] += 1
    kept = {
        name: {"cpu_pct": round(cpu, 2), "wakeups_per_s": round(wakes, 1), "threads": int(n)}
        for name, (cpu, wakes, n) in groups.items()
        if cpu >= least_pct or wakes >= 1
    }
    return dict(sorted(kept.items(), key=lambda kv: -kv[1]["cpu_pct"]))


class ThreadWindow:
    """Per-thread usage of one process tree over a run of readings (bench/bots.py: bot 0, once a
    second while it is in its meeting).

    Each thread keeps its latest reading, so one that ends meanwhile (a playback thread when its
    element pauses) still counts. Readings stop counting once a process of the first reading is
    gone: the bot is leaving (its last "active" outlives its Chromium by the time it takes to
    leave and report).
    """

    def __init__(self) -> None:
        self.first: dict[tuple[int, int], ThreadReading] = {}
        self.latest: dict[tuple[int, int], ThreadReading] = {}
        self.seconds = 0.0
        self._t0 = 0.0

    def add(self, procs: list[psutil.Process]) -> None:
        now, reading = time.monotonic(), read_threads(procs)
        if not self.first:
            self.first, self._t0 = reading, now
        elif {pid for pid, _ in reading} >= {pid for pid, _ in self.first}:
            self.latest.update(reading)
            self.seconds = now - self._t0

    def usage(self) -> dict[str, dict[str, float]]:
        return thread_usage(self.first, self.latest, self.seconds)
