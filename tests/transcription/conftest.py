"""Fixtures for the transcription tests: a real service child process with tiny.en, speech clips."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from vexa.embedded import free_port
from vexa.testing.processes import ServiceProcess
from vexa.testing.speech import read_wav, resample, synthesize

SR = 16000
TEXT_A = "Please send the quarterly report to the finance team by Friday morning."
TEXT_B = "The meeting is moved to Tuesday afternoon."


def speech(text: str) -> np.ndarray:
    """espeak-ng speech as float32 mono 16 kHz."""
    samples, rate = read_wav(synthesize(text))
    return resample(samples, rate, SR)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


@dataclass
class Service:
    proc: ServiceProcess
    health_port: int
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.proc.port}/ws"

    def health(self) -> tuple[int, dict[str, Any]]:
        r = httpx.get(f"http://127.0.0.1:{self.health_port}/health", timeout=5)
        return r.status_code, r.json()

    async def wait_idle(self, within_s: float = 15.0) -> dict[str, Any]:
        """Poll health (bounded) until no session is open."""
        body: dict[str, Any] = {}
        for _ in range(int(within_s / 0.1)):
            _, body = await asyncio.to_thread(self.health)
            if body["active_sessions"] == 0:
                return body
            await asyncio.sleep(0.1)
        return body


def start_service(redis_url: str, tmp: Path, name: str, **extra: str) -> Service:
    health_port = free_port()
    log_path = tmp / f"transcription-{name}.log"
    env = {
        "REDIS_URL": redis_url,
        "WHISPER_MODEL": "tiny.en",
        "HEALTH_PORT": str(health_port),
        "WL_MAX_CLIENTS": "2",
        "INFERENCE_WORKERS": "1",
        "CPU_THREADS": "1",
        "VEXA_HOME": str(tmp / "vexa-home"),
        "LOG_LEVEL": "INFO",
        # These tests speak as anonymous WhisperLive clients: they opt in (test_transcription_auth.py
        # starts the service without it).
        "WL_STANDALONE": "true",
        **extra,
    }
    proc = ServiceProcess(
        "transcription",
        free_port(),
        env,
        health_url=f"http://127.0.0.1:{health_port}/health",
        log_path=log_path,
    )
    proc.start(timeout=90)
    return Service(proc, health_port, log_path)


@pytest.fixture(scope="module")
def service(redis_url: str, tmp_session_dir: Path) -> Iterator[Service]:
    svc = start_service(redis_url, tmp_session_dir, "main")
    try:
        yield svc
    finally:
        svc.proc.stop()


@dataclass
class Received:
    messages: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    def segment_messages(self) -> list[list[dict[str, Any]]]:
        return [m["segments"] for m in self.messages if "segments" in m]

    def final_segments(self) -> list[dict[str, Any]]:
        seg = self.segment_messages()
        return seg[-1] if seg else []


async def read_all(ws: ClientConnection, into: Received) -> None:
    with contextlib.suppress(Exception):
        async for message in ws:
            into.messages.append(json.loads(message))
    into.closed = True


async def open_session(url: str, config: dict[str, Any]) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(url, open_timeout=10, max_size=2**22)
    await ws.send(json.dumps(config))
    first = json.loads(await asyncio.wait_for(ws.recv(), 15))
    return ws, first


async def stream_audio(
    ws: ClientConnection, audio: np.ndarray, *, chunk_s: float = 0.1, speed: float = 1.0, events=None
) -> None:
    """Send audio paced at ``speed`` x real time; ``events`` = {sample_index: json_dict}."""
    step = int(chunk_s * SR)
    started = time.monotonic()
    pending = dict(events or {})
    for i in range(0, len(audio), step):
        for at in [k for k in pending if k <= i]:
            await ws.send(json.dumps(pending.pop(at)))
        await ws.send(audio[i : i + step].astype("<f4").tobytes())
        delay = started + (i + step) / SR / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
