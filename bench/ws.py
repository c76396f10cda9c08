"""Live-event fan-out latency: N WebSocket subscribers (default 1000) on one meeting.

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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).parent))
from _stack import has_service, make_user_with_meeting, percentile, run, service_env, start, stores
from vexa.config import STREAM_NAME_DEFAULT
from vexa.events import publish_event
from vexa.streams import Segment, SessionStartMessage, TranscriptionMessage, to_fields

NATIVE = "abc-defg-hij"


async def wait_for_marker(ws, marker: str, arrivals: list[float]) -> None:
    """Read until the event carrying ``marker`` arrives; note when."""
    while True:
        message = await ws.recv()
        if marker in message:
            arrivals.append(time.perf_counter())
            return


async def main(args: argparse.Namespace, db_url: str, redis_url: str) -> None:
    use_xadd = args.source == "xadd" or (args.source == "auto" and has_service("vexa.collector.main"))
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
            _, token, meeting_id = await make_user_with_meeting(db_url)
            url = gateway.base_url.replace("http://", "ws://") + "/ws"

            started = time.perf_counter()
            for i in range(0, args.clients, 50):  # connect in batches to stay under the listen backlog
                batch = await asyncio.gather(
                    *(
                        connect(url, additional_headers={"X-API-Key": token}, max_size=None, open_timeout=60)
                        for _ in range(min(50, args.clients - i))
                    )
                )
                clients.extend(batch)
            subscribe = json.dumps(
                {"action": "subscribe", "meetings": [{"platform": "google_meet", "native_id": NATIVE}]}
            )
            await asyncio.gather(*(ws.send(subscribe) for ws in clients))
            replies = await asyncio.gather(*(ws.recv() for ws in clients))
            assert all(json.loads(r)["type"] == "subscribed" for r in replies), replies[:3]
            print(
                f"{len(clients)} subscribers ready in {time.perf_counter() - started:.1f}s "
                f"(source: {'XADD through the collector' if use_xadd else 'PUBLISH on the meeting channel'})"
            )

            session = f"bench-{int(time.time())}"
            if use_xadd:
                start_msg = SessionStartMessage(
                    uid=session,
                    platform="google_meet",
                    meeting_id=NATIVE,
                    token=token,
                    start_timestamp=datetime.now(UTC),
                )
                await redis.xadd(STREAM_NAME_DEFAULT, to_fields(start_msg))

            all_in: list[float] = []
            per_delivery: list[float] = []
            for n in range(args.segments):
                marker = f"segment-{n}-{time.monotonic_ns()}"
                arrivals: list[float] = []

                waiters = [asyncio.create_task(wait_for_marker(ws, marker, arrivals)) for ws in clients]
                await asyncio.sleep(0)
                t0 = time.perf_counter()
                if use_xadd:
                    seg = Segment(
                        start=float(n), end=float(n) + 0.9, text=marker, language="en", completed=True
                    )
                    msg = TranscriptionMessage(
                        uid=session, platform="google_meet", meeting_id=NATIVE, token=token, segments=[seg]
                    )
                    await redis.xadd(STREAM_NAME_DEFAULT, to_fields(msg))
                else:
                    payload = {
                        "segments": [{"start": float(n), "end": n + 0.9, "text": marker, "completed": True}]
                    }
                    await publish_event(
                        redis, "transcript.mutable", meeting_id, "google_meet", NATIVE, payload
                    )
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

            print(f"{args.segments} segments x {len(clients)} subscribers")
            print(
                f"time until EVERY subscriber has the segment: p50 {percentile(all_in, 50) * 1000:.1f} ms, "
                f"p99 {percentile(all_in, 99) * 1000:.1f} ms"
            )
            print(
                f"single delivery latency: p50 {percentile(per_delivery, 50) * 1000:.1f} ms, "
                f"p99 {percentile(per_delivery, 99) * 1000:.1f} ms"
            )
        finally:
            await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
            await redis.aclose()
            for proc in reversed(procs):
                proc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--source", choices=("auto", "xadd", "publish"), default="auto")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between segments")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-segment limit")
    arguments = parser.parse_args()
    with stores() as (db, redis_url):
        run(main(arguments, db, redis_url))
