"""bench/_threads.py reads real threads right: the per-thread CPU and wake-ups that README's
breakdown of a bot's CPU rests on (bench/bots.py, "bot0_threads_in_meeting")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from _threads import ThreadWindow, process_kind

# Each program says "ready" once the interpreter has started: a window opened earlier would count
# the interpreter's own start-up, which made the idle one look busy (CI, stop 25).
READY = "import sys, time\nprint('ready', flush=True)\n"
PROGRAMS = {
    "busy": READY + "while True: pass",
    "sleeper": READY + "while True: time.sleep(0.005)",
    "idle": READY + "time.sleep(60)",
}


@pytest.fixture
def spawn():
    started: list[subprocess.Popen] = []

    def start(name: str) -> psutil.Process:
        proc = subprocess.Popen([sys.executable, "-c", PROGRAMS[name]], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout.readline() == "ready\n"
        return psutil.Process(proc.pid)

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def measure(proc: psutil.Process, seconds: float = 1.0) -> dict[str, dict[str, float]]:
    window = ThreadWindow()
    window.add([proc])
    time.sleep(seconds)
    window.add([proc])
    assert window.seconds == pytest.approx(seconds, abs=0.5)
    return window.usage()


def test_cpu_and_wakeups_per_thread(spawn):
    busy = measure(spawn("busy"))["python/python"]
    sleeper = measure(spawn("sleeper"))["python/python"]
    # A spinning thread spends its CPU; one that sleeps 5 ms at a time wakes up to 200 times a
    # second for little CPU; an idle one does neither, and is left out of the breakdown.
    assert busy["cpu_pct"] >= 20
    assert sleeper["wakeups_per_s"] >= 20
    assert sleeper["cpu_pct"] < busy["cpu_pct"]
    assert busy["threads"] == sleeper["threads"] == 1
    assert measure(spawn("idle")) == {}


def test_readings_stop_when_a_process_is_gone(spawn):
    """The bot's last "active" outlives its Chromium: a window stops where a process went."""
    a, b = spawn("sleeper"), spawn("idle")
    window = ThreadWindow()
    window.add([a, b])
    time.sleep(0.3)
    window.add([a, b])
    counted = window.seconds
    assert counted > 0
    b.kill()
    b.wait()
    time.sleep(0.3)
    window.add([a])
    assert window.seconds == counted


def test_process_kinds():
    assert process_kind(["/usr/bin/python3", "-m", "vexa", "bot"]) == "python3"
    assert process_kind(["/usr/lib/chromium/chromium-headless-shell", "--headless"]) == "chromium-browser"
    assert process_kind(["chromium", "--type=renderer"]) == "renderer"
    audio = ["chromium", "--type=utility", "--utility-sub-type=audio.mojom.AudioService"]
    assert process_kind(audio) == "utility-audio"
