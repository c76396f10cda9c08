"""Streaming transcription figures on this machine (real service, real model, real Redis).

Starts an embedded Valkey and `vexa serve transcription` as a child process, then:

1. offline reference: faster-whisper's own ``transcribe`` of the whole clip (same model,
   same compute type, beam 5, VAD filter) — its real-time factor and the text;
2. one streaming session in real time: WER of the committed transcript vs the reference
   text and vs the offline transcript, commit latency (end of an utterance's audio sent
   -> its ``completed`` segment on the Redis stream), p50/p95, and the service's RTF
   (decode seconds / audio seconds, from the process CPU time);
3. concurrency: N sessions streaming the clip in real time at once, for rising N, until
   the p95 commit latency exceeds ``--max-latency`` or a session falls behind.

    .venv/bin/python bench/transcription.py --model tiny.en
    .venv/bin/python bench/transcription.py --model base --levels 1,2,3,4

The clip is espeak-ng speech (sentences with 0.8-1.4 s pauses), harder than human speech
for Whisper; the machine may be shared, so treat figures as lower bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from vexa.embedded import EmbeddedValkey, free_port
from vexa.streams import TranscriptionMessage, parse_payload
from vexa.testing.processes import ServiceProcess
from vexa.testing.speech import read_wav, resample, synthesize
from vexa.transcription.models import resolve_model
from vexa.transcription.wer import wer

SR = 16000
SENTENCES = [
    "Good morning everyone, let us start with the budget review.",
    "Spending in the third quarter was slightly above the plan.",
    "Most of the difference came from the new servers we bought in August.",
    "Next month we will focus on reliability and the onboarding flow.",
    "Please send your questions to the finance team before Friday.",
    "Thanks, that is all from me today.",
]
PAUSES = [0.8, 1.2, 1.0, 1.4, 0.9, 0.8]
STREAM = "transcription_segments"


@dataclass
class Clip:
    audio: np.ndarray
    utterance_ends: list[float]  # seconds into the clip where each sentence's audio ends
    text: str


def make_clip() -> Clip:
    parts, ends, t = [np.zeros(int(0.5 * SR), np.float32)], [], 0.5
    for sentence, pause in zip(SENTENCES, PAUSES, strict=True):
        data, rate = read_wav(synthesize(sentence))
        speech = resample(data, rate, SR)
        parts += [speech, np.zeros(int(pause * SR), np.float32)]
        t += len(speech) / SR
        ends.append(t)
        t += pause
    return Clip(np.concatenate(parts), ends, " ".join(SENTENCES))


@dataclass
class SessionResult:
    uid: str
    sent_end_wall: dict[int, float] = field(default_factory=dict)  # utterance -> wall time sent
    start_wall: float = 0.0
    closed_wall: float = 0.0
    finished_wall: float = 0.0


async def stream_session(url: str, clip: Clip, uid: str, result: SessionResult) -> None:
    async with connect(url, open_timeout=30, max_size=2**22) as ws:
        await ws.send(
            json.dumps(
                {
                    "uid": uid,
                    "language": "en",
                    "platform": "google_meet",
                    "meeting_id": f"bench-{uid[:8]}",
                    "token": "bench-token",
                }
            )
        )
        ready = json.loads(await ws.recv())
        if ready.get("message") != "SERVER_READY":
            raise RuntimeError(f"not ready: {ready}")

        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain())
        step = int(0.1 * SR)
        start = time.monotonic()
        result.start_wall = time.time()
        pending = list(enumerate(clip.utterance_ends))
        for i in range(0, len(clip.audio), step):
            await ws.send(clip.audio[i : i + step].tobytes())
            sent_s = (i + step) / SR
            while pending and pending[0][1] <= sent_s:
                k, _ = pending.pop(0)
                result.sent_end_wall[k] = time.time()
            delay = start + sent_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        result.closed_wall = time.time()
        await ws.send(b"END_OF_AUDIO")
        await asyncio.wait_for(reader, 120)
        result.finished_wall = time.time()


async def watch_stream(
    redis: Redis, arrivals: dict[str, list[tuple[float, TranscriptionMessage]]], stop: asyncio.Event
) -> None:
    last = "$"
    while not stop.is_set():
        got = await redis.xread({STREAM: last}, block=200, count=500)
        now = time.time()
        for _name, entries in got:
            for entry_id, fields in entries:
                last = entry_id
                msg = parse_payload(fields["payload"])
                if isinstance(msg, TranscriptionMessage):
                    arrivals.setdefault(msg.uid, []).append((now, msg))


def commit_latencies(
    clip: Clip, result: SessionResult, arrivals: list[tuple[float, TranscriptionMessage]]
) -> list[float]:
    """Per utterance: first arrival of a completed segment that ends near the utterance's end."""
    out = []
    for k, end_s in enumerate(clip.utterance_ends):
        sent = result.sent_end_wall.get(k)
        if sent is None:
            continue
        for wall, msg in arrivals:
            if any(s.completed and s.text and abs(s.end - end_s) < 1.0 for s in msg.segments):
                out.append(wall - sent)
                break
    return out


def final_text(arrivals: list[tuple[float, TranscriptionMessage]]) -> str:
    latest: dict[float, tuple[str, bool]] = {}
    for _, msg in arrivals:
        for s in msg.segments:
            latest[round(s.start, 3)] = (s.text, s.completed)
    return " ".join(text for _, (text, done) in sorted(latest.items()) if done and text)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def offline_reference(model: str, clip: Clip) -> tuple[str, float]:
    from faster_whisper import WhisperModel

    wm = WhisperModel(resolve_model(model), device="cpu", compute_type="int8", cpu_threads=1)
    started = time.monotonic()
    segments, _ = wm.transcribe(clip.audio, language="en", beam_size=5, vad_filter=True)
    text = " ".join(s.text.strip() for s in segments)
    return text, (len(clip.audio) / SR) / (time.monotonic() - started)


def health(port: int) -> dict[str, object]:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()


async def run_level(
    url: str, redis: Redis, clip: Clip, n: int, proc: psutil.Process, health_port: int
) -> dict[str, object]:
    arrivals: dict[str, list[tuple[float, TranscriptionMessage]]] = {}
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_stream(redis, arrivals, stop))
    await asyncio.sleep(0.3)
    results = [SessionResult(uid=str(uuid.uuid4())) for _ in range(n)]
    cpu0 = proc.cpu_times()
    h0 = health(health_port)
    await asyncio.gather(*(stream_session(url, clip, r.uid, r) for r in results))
    cpu1 = proc.cpu_times()
    h1 = health(health_port)
    await asyncio.sleep(1.0)
    stop.set()
    await watcher
    lat = [x for r in results for x in commit_latencies(clip, r, arrivals.get(r.uid, []))]
    expected = n * len(clip.utterance_ends)
    texts = [final_text(arrivals.get(r.uid, [])) for r in results]
    audio_s = n * len(clip.audio) / SR
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "sessions": n,
        "latency_p50_s": round(pct(lat, 0.5), 2),
        "latency_p95_s": round(pct(lat, 0.95), 2),
        "latency_max_s": round(max(lat), 2) if lat else None,
        "utterances_committed": f"{len(lat)}/{expected}",
        "flush_after_end_s": round(max(r.finished_wall - r.closed_wall for r in results), 2),
        "service_cpu_s_per_audio_s": round(cpu_s / audio_s, 3),
        "decode_s_per_audio_s": round((h1["decode_seconds"] - h0["decode_seconds"]) / audio_s, 3),
        "whisper_decodes": h1["decodes"] - h0["decodes"],
        "decodes_skipped": h1["decodes_skipped"] - h0["decodes_skipped"],
        "wer_vs_reference": round(statistics.mean(wer(clip.text, t) for t in texts), 3),
        "texts": texts,
    }


async def main_async(args: argparse.Namespace) -> None:
    clip = make_clip()
    audio_s = len(clip.audio) / SR
    print(f"clip: {audio_s:.1f}s, {len(SENTENCES)} utterances; model {args.model}; cpus {os.cpu_count()}")
    offline_text, offline_rtf = await asyncio.to_thread(offline_reference, args.model, clip)
    print(
        f"offline faster-whisper (beam 5, 1 thread): {offline_rtf:.1f}x real time, "
        f"WER vs reference {wer(clip.text, offline_text):.3f}"
    )
    with tempfile.TemporaryDirectory(prefix="vexa-bench-") as tmp:
        valkey = EmbeddedValkey(Path(tmp) / "valkey", persist=False).start()
        hport = free_port()
        env = {
            "REDIS_URL": valkey.url,
            "WHISPER_MODEL": args.model,
            "HEALTH_PORT": str(hport),
            "WL_MAX_CLIENTS": "64",
            "LOG_LEVEL": "WARNING",
            "MIN_CHUNK_S": str(args.min_chunk),
        }
        if args.workers:
            env["INFERENCE_WORKERS"] = str(args.workers)
        service = ServiceProcess(
            "transcription",
            free_port(),
            env,
            health_url=f"http://127.0.0.1:{hport}/health",
            log_path=Path(tmp) / "transcription.log",
        )
        service.start(timeout=120)
        redis = Redis.from_url(valkey.url, decode_responses=True)
        try:
            proc = psutil.Process(service.proc.pid)  # type: ignore[union-attr]
            url = f"ws://127.0.0.1:{service.port}/ws"
            rows = []
            for n in [int(x) for x in args.levels.split(",")]:
                row = await run_level(url, redis, clip, n, proc, hport)
                texts = row.pop("texts")
                if n == 1:
                    stream_text = texts[0]
                    print(f"streaming text: {stream_text}")
                    print(f"offline text:   {offline_text}")
                    print(
                        f"streaming WER vs offline transcript: {wer(offline_text, stream_text):.3f}; "
                        f"vs reference: {wer(clip.text, stream_text):.3f}"
                    )
                    print(
                        f"streaming service RTF: {1 / max(row['service_cpu_s_per_audio_s'], 1e-9):.1f}x "
                        "real time (audio s per CPU s, drafts included)"
                    )
                rows.append(row)
                print(json.dumps(row))
                if row["latency_p95_s"] > args.max_latency or row["flush_after_end_s"] > args.max_latency * 2:
                    break
            ok = [
                r["sessions"]
                for r in rows
                if r["latency_p95_s"] <= args.max_latency
                and r["utterances_committed"].split("/")[0] == r["utterances_committed"].split("/")[1]
            ]
            print(
                f"sustained real-time sessions (p95 commit latency <= {args.max_latency}s, all committed): "
                f"{max(ok) if ok else 0}"
            )
            print(f"health after: {health(hport)}")
        finally:
            await redis.aclose()
            service.stop()
            valkey.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--levels", default="1,2,4,6,8")
    parser.add_argument("--max-latency", type=float, default=3.0)
    parser.add_argument("--min-chunk", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=0, help="INFERENCE_WORKERS (default: service default)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
