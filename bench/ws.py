"""Live-event fan-out latency: N WebSocket subscribers (default 1000) on one meeting, or
spread over M meetings (``--meetings``; e.g. 10,000 subscribers over 1,000 meetings).

For each of S segments it measures the time from the segment's source event to
the moment EVERY subscriber has received it, and prints p50/p99 over segments
(plus the per-delivery p50/p99). The source is a real ``XADD`` of a
``transcription`` message on ``transcription_segments`` through a running
collector (``--source xadd``, the default when `vexa.collector.main` exists), or a
direct ``PUBLISH`` on the meeting channel (``--source publish``).

Everything runs on 127.0.0.1 as real processes (embedded PostgreSQL + Valkey unless
DATABASE_URL / REDIS_URL are set); the N clients live in this process, so on a small
machine their own receive work is part of the figure.

    .venv/bin/python bench/ws.py --clients 1000 --segments 20
    .venv/bin/python bench/ws.py --clients 10000 --meetings 1000 --segments 10  # a segment per meeting
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
from redis.asyncio import Redis
from sqlalchemy import text
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).parent))
from _stack import has_service, make_user_with_meeting, percentile, run, service_env, start, stores
from vexa.config import STREAM_NAME_DEFAULT
from vexa.db import Database
from vexa.events import build_event, meeting_channel
from vexa.streams import Segment, SessionStartMessage, TranscriptionMessage, to_fields


async def wait_for_marker(ws, marker: str, arrivals: list[float]) -> None:
    """Read until the event carrying ``marker`` arrives; note when."""
    while True:
        message = await ws.recv()
        if marker in message:
            arrivals.append(time.perf_counter())
            return


def native_for(i: int) -> str:
    """A valid Google Meet id (abc-defg-hij shape) for meeting number ``i``."""
    letters = ""
    for _ in range(10):
        i, r = divmod(i, 26)
        letters += chr(ord("a") + r)
    return f"{letters[:3]}-{letters[3:7]}-{letters[7:]}"


async def add_meetings(db_url: str, user_id: int, natives: list[str]) -> None:
    if not natives:
        return
    db = Database(db_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
                    "VALUES (:u, 'google_meet', :n, 'active')"
                ),
                [{"u": user_id, "n": n} for n in natives],
            )
    finally:
        await db.dispose()


def raise_open_files_limit() -> int:
    """Every client socket is a file here and in the gateway (a child inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def main(args: argparse.Namespace, db_url: str, redis_url: str) -> None:
    use_xadd = args.source == "xadd" or (args.source == "auto" and has_service("vexa.collector.main"))
    limit = raise_open_files_limit()
    if limit < args.clients + 1000:
        print(f"open-files limit {limit} is too low for {args.clients} clients")
    with tempfile.TemporaryDirectory(prefix="vexa-bench-logs-") as logs:
        env = service_env(db_url, redis_url)
        procs = []
        redis = Redis.from_url(redis_url, decode_responses=True)
        clients = []
        try:
            if use_xadd:
                procs.append(start("collector", env, Path(logs)))
            gateway = start("gateway", {**env, "WS_QUEUE_SIZE": "1024"}, Path(logs))
            procs.append(gateway)
            user_id, token, _ = await make_user_with_meeting(db_url, native=native_for(0))
            natives = [native_for(i) for i in range(args.meetings)]
            await add_meetings(db_url, user_id, natives[1:])
            url = gateway.base_url.replace("http://", "ws://") + "/ws"

            started = time.perf_counter()
            for i in range(0, args.clients, 50):  # connect in batches to stay under the listen backlog
                batch = await asyncio.gather(
                    *(
                        connect(url, additional_headers={"X-API-Key": token}, max_size=None, open_timeout=120)
                        for _ in range(min(50, args.clients - i))
                    )
                )
                clients.extend(batch)
            watching = [natives[i % len(natives)] for i in range(len(clients))]
            for i in range(0, len(clients), 500):
                part = range(i, min(i + 500, len(clients)))
                await asyncio.gather(*(clients[j].send(_subscribe(watching[j])) for j in part))
                replies = await asyncio.gather(*(clients[j].recv() for j in part))
                assert all(json.loads(r)["type"] == "subscribed" for r in replies), replies[:3]
            print(
                f"{len(clients)} subscribers over {len(natives)} meeting(s) ready in "
                f"{time.perf_counter() - started:.1f}s "
                f"(source: {'XADD through the collector' if use_xadd else 'PUBLISH on the meeting channel'})"
            )

            session = f"bench-{int(time.time())}"
            meeting_ids = await _meeting_ids(db_url, user_id)
            if use_xadd:
                async with redis.pipeline(transaction=False) as pipe:
                    for native in natives:
                        start_msg = SessionStartMessage(
                            uid=f"{session}-{native}",
                            platform="google_meet",
                            meeting_id=native,
                            token=token,
                            start_timestamp=datetime.now(UTC),
                        )
                        pipe.xadd(STREAM_NAME_DEFAULT, to_fields(start_msg))
                    await pipe.execute()

            all_in: list[float] = []
            per_delivery: list[float] = []
            gateway_cpu = psutil.Process(gateway.pid)
            cpu_before = sum(gateway_cpu.cpu_times()[:2])
            for n in range(args.segments):
                markers = {
                    native: f"segment-{n}-{k}-{time.monotonic_ns()}" for k, native in enumerate(natives)
                }
                arrivals: list[float] = []

                waiters = [
                    asyncio.create_task(wait_for_marker(ws, markers[watching[j]], arrivals))
                    for j, ws in enumerate(clients)
                ]
                await asyncio.sleep(0)
                t0 = time.perf_counter()
                async with redis.pipeline(transaction=False) as pipe:
                    for native, marker in markers.items():
                        if use_xadd:
                            seg = Segment(
                                start=float(n), end=float(n) + 0.9, text=marker, language="en", completed=True
                            )
                            msg = TranscriptionMessage(
                                uid=f"{session}-{native}",
                                platform="google_meet",
                                meeting_id=native,
                                token=token,
                                segments=[seg],
                            )
                            pipe.xadd(STREAM_NAME_DEFAULT, to_fields(msg))
                        else:
                            payload = {
                                "segments": [
                                    {"start": float(n), "end": n + 0.9, "text": marker, "completed": True}
                                ]
                            }
                            event = build_event(
                                "transcript.mutable", meeting_ids[native], "google_meet", native, payload
                            )
                            pipe.publish(meeting_channel(meeting_ids[native]), json.dumps(event))
                    await pipe.execute()
                done, pending = await asyncio.wait(waiters, timeout=args.timeout)
                for task in pending:
                    task.cancel()
                if pending:
                    print(
                        f"segment {n}: only {len(done)}/{len(clients)} subscribers got it in {args.timeout}s"
                    )
                    continue
                all_in.append(max(arrivals) - t0)
                per_delivery.extend(a - t0 for a in arrivals)
                await asyncio.sleep(args.gap)

            cpu_s = sum(gateway_cpu.cpu_times()[:2]) - cpu_before
            deliveries = max(len(per_delivery), 1)
            print(
                f"{args.segments} rounds x {len(clients)} subscribers "
                f"({len(natives)} meeting(s), one segment each a round)"
            )
            print(
                f"time until EVERY subscriber has the segment: p50 {percentile(all_in, 50) * 1000:.1f} ms, "
                f"p99 {percentile(all_in, 99) * 1000:.1f} ms"
            )
            print(
                f"single delivery latency: p50 {percentile(per_delivery, 50) * 1000:.1f} ms, "
                f"p99 {percentile(per_delivery, 99) * 1000:.1f} ms"
            )
            print(
                f"gateway CPU: {cpu_s:.2f} s in all, {cpu_s * 1e6 / deliveries:.0f} µs per delivery "
                "(steadier than latency on a shared machine)"
            )
        finally:
            await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
            await redis.aclose()
            for proc in reversed(procs):
                proc.stop()


def _subscribe(native: str) -> str:
    return json.dumps({"action": "subscribe", "meetings": [{"platform": "google_meet", "native_id": native}]})


async def _meeting_ids(db_url: str, user_id: int) -> dict[str, int]:
    db = Database(db_url, pool_size=1)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT platform_specific_id, id FROM meetings WHERE user_id = :u"), {"u": user_id}
            )
            return {native: meeting_id for native, meeting_id in rows}
    finally:
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--meetings", type=int, default=1, help="meetings the clients spread over")
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--source", choices=("auto", "xadd", "publish"), default="auto")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between segments")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-segment limit")
    arguments = parser.parse_args()
    with stores() as (db, redis_url):
        run(main(arguments, db, redis_url))
