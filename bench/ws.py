"""Live-event fan-out latency: N WebSocket subscribers (default 1000) on one meeting, or
spread over M meetings (``--meetings``; e.g. 10,000 subscribers over 1,000 meetings).

For each of S segments it measures the time from the segment's source event to
the moment EVERY subscriber has received it, and prints p50/p99 over segments
(plus the per-delivery p50/p99). The source is a real ``XADD`` of a
``transcription`` message on ``transcription_segments`` through a running
collector (``--source xadd``, the default when `vexa.collector.main` exists), or a
direct ``PUBLISH`` on the meeting channel (``--source publish``).

Everything runs on 127.0.0.1 as real processes (embedded PostgreSQL + Valkey unless
DATABASE_URL / REDIS_URL are set). The N clients live in this process as lean
subscribers: the websockets library's sans-I/O protocol driven straight from
``data_received``, with no task per client, so that 10,000 of them cost this
process little next to the gateway (a ``websockets`` client costs a task wake-up
and a queue per message, which on a 2-core box was most of the measured latency).
Their CPU still shares the machine: the gateway's and this process's CPU per
delivery are printed beside the latencies, with the load average.

A warm-up round (not timed) comes first: with ``--source xadd`` it makes the collector
load each meeting's session once, which is a one-off per meeting, not fan-out.

    .venv/bin/python bench/ws.py --clients 1000 --segments 20
    .venv/bin/python bench/ws.py --clients 10000 --meetings 1000 --segments 10  # a segment per meeting
    .venv/bin/python bench/ws.py --clients 10000 --meetings 1000 --segments 10 --spread 1 --gap 0

By default a round publishes every meeting's segment at once (the worst case: 10,000
deliveries queued behind each other). Live meetings emit their segments at their own
moments: ``--spread S`` publishes a round's segments evenly over S seconds (with 1,000
meetings and ``--spread 1``, each meeting sends one segment a second: 10,000 deliveries a
second), and each delay counts from its own meeting's publish.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from redis.asyncio import Redis
from sqlalchemy import text
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

sys.path.insert(0, str(Path(__file__).parent))
from _stack import has_service, make_user_with_meeting, percentile, run, service_env, start, stores
from vexa.config import STREAM_NAME_DEFAULT
from vexa.db import Database
from vexa.events import build_event, meeting_channel
from vexa.streams import Segment, SessionStartMessage, TranscriptionMessage, to_fields

SLICE_S = 0.01  # with --spread, one pipeline of segments every 10 ms


class Subscriber(asyncio.Protocol):
    """One WebSocket client without a task: frames are parsed in ``data_received`` (pings are
    answered there too) and the text frame that carries ``want`` resolves ``arrived`` with
    its arrival time."""

    def __init__(self, url: str, key: str) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.want = b""
        self.arrived: asyncio.Future[float] | None = None
        self.deliveries = 0

    def expect(self, want: str) -> asyncio.Future[float]:
        self.want = want.encode()
        self.arrived = asyncio.get_running_loop().create_future()
        return self.arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        request = self.ws.connect()
        request.headers["X-API-Key"] = self.key
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if self.ws.handshake_exc is not None:
                    self.open.set_exception(self.ws.handshake_exc)
                else:
                    self.open.set_result(None)
            elif event.opcode is Opcode.TEXT and self.want and self.want in event.data:
                self.want = b""
                self.deliveries += 1
                if self.arrived is not None and not self.arrived.done():
                    self.arrived.set_result(time.perf_counter())
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.open, self.arrived):
            if future is not None and not future.done():
                future.set_exception(ConnectionError("closed by the gateway"))

    def send(self, text: str) -> None:
        self.ws.send_text(text.encode())
        self._flush()

    def close(self) -> None:
        self.open.cancel()
        if self.arrived is not None:
            self.arrived.cancel()
        if self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)


async def open_subscribers(url: str, key: str, count: int) -> list[Subscriber]:
    where = urlsplit(url)
    loop = asyncio.get_running_loop()
    clients: list[Subscriber] = []
    for i in range(0, count, 100):  # in batches, to stay under the listen backlog
        batch = [Subscriber(url, key) for _ in range(min(100, count - i))]
        await asyncio.gather(
            *(loop.create_connection(lambda c=c: c, where.hostname, where.port) for c in batch)  # type: ignore[misc]
        )
        await asyncio.wait_for(asyncio.gather(*(c.open for c in batch)), 120)
        clients.extend(batch)
    return clients


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
            clients = await open_subscribers(url, token, args.clients)
            watching = [natives[i % len(natives)] for i in range(len(clients))]
            for i in range(0, len(clients), 500):
                part = range(i, min(i + 500, len(clients)))
                acks = [clients[j].expect('"subscribed"') for j in part]
                for j in part:
                    clients[j].send(_subscribe(watching[j]))
                await asyncio.wait_for(asyncio.gather(*acks), 120)
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

            async def one_round(n: int, timeout: float) -> tuple[list[float], list[float]]:
                """Publish segment ``n`` in every meeting: all at once, or spread evenly over
                ``--spread`` seconds. Per delivery and per event (its slowest subscriber), the delay
                from that meeting's own publish."""
                markers = {
                    native: f"segment-{n}-{k}-{time.monotonic_ns()}" for k, native in enumerate(natives)
                }
                waiters = [c.expect(markers[watching[j]]) for j, c in enumerate(clients)]
                sent_at: dict[str, float] = {}
                slices = max(1, round(args.spread / SLICE_S))
                first = time.perf_counter()
                for k in range(slices):
                    part = natives[k * len(natives) // slices : (k + 1) * len(natives) // slices]
                    await asyncio.sleep(max(0.0, first + k * SLICE_S - time.perf_counter()))
                    async with redis.pipeline(transaction=False) as pipe:
                        for native in part:
                            marker = markers[native]
                            _queue_segment(pipe, use_xadd, n, native, marker, session, token, meeting_ids)
                        now = time.perf_counter()
                        await pipe.execute()
                    sent_at.update(dict.fromkeys(part, now))
                await asyncio.wait(waiters, timeout=timeout)
                deliveries: list[float] = []
                slowest: dict[str, float] = {}
                for j, w in enumerate(waiters):
                    if w.done() and w.exception() is None:
                        delay = w.result() - sent_at[watching[j]]
                        deliveries.append(delay)
                        slowest[watching[j]] = max(delay, slowest.get(watching[j], 0.0))
                    else:
                        w.cancel()
                        slowest[watching[j]] = float("inf")
                if len(deliveries) < len(clients):
                    got = f"{len(deliveries)}/{len(clients)}"
                    print(f"segment {n}: only {got} subscribers got it in {timeout:g}s")
                return deliveries, [d for d in slowest.values() if d != float("inf")]

            for n in range(args.warmup):  # untimed; the collector meets each session here first
                await one_round(n, max(args.timeout, 300.0))
                await asyncio.sleep(args.gap)

            all_in: list[float] = []
            per_delivery: list[float] = []
            watched = {"gateway": psutil.Process(gateway.pid), "this bench (clients)": psutil.Process()}
            if use_xadd:
                watched["collector"] = psutil.Process(procs[0].pid)
            cpu_before = {name: sum(p.cpu_times()[:2]) for name, p in watched.items()}
            load_before = os.getloadavg()[0]
            for n in range(args.warmup, args.warmup + args.segments):
                deliveries, events = await one_round(n, args.timeout)
                per_delivery.extend(deliveries)
                all_in.extend(events)
                await asyncio.sleep(args.gap)
            cpu = {name: sum(p.cpu_times()[:2]) - cpu_before[name] for name, p in watched.items()}

            deliveries = max(len(per_delivery), 1)
            print(
                f"{args.segments} rounds x {len(clients)} subscribers "
                f"({len(natives)} meeting(s), one segment each a round, "
                f"{'all at once' if args.spread <= 0 else f'spread over {args.spread:g} s'}); "
                f"{len(per_delivery)}/{args.segments * len(clients)} deliveries arrived"
            )
            if all_in:
                print(
                    f"time until EVERY subscriber of its meeting has a segment: "
                    f"p50 {percentile(all_in, 50) * 1000:.1f} ms, p99 {percentile(all_in, 99) * 1000:.1f} ms"
                )
            print(
                f"single delivery latency: p50 {percentile(per_delivery, 50) * 1000:.1f} ms, "
                f"p99 {percentile(per_delivery, 99) * 1000:.1f} ms"
            )
            for name, seconds in cpu.items():
                print(f"{name} CPU: {seconds:.2f} s in all, {seconds * 1e6 / deliveries:.1f} µs per delivery")
            print(
                f"load average (1 min) {load_before:.2f} before the rounds, {os.getloadavg()[0]:.2f} after "
                "(CPU per delivery is the figure that holds on a shared machine)"
            )
        finally:
            for client in clients:
                client.close()
            await redis.aclose()
            for proc in reversed(procs):
                proc.stop()


def _queue_segment(
    pipe, use_xadd: bool, n: int, native: str, marker: str, session: str, token: str, ids: dict[str, int]
) -> None:
    """One segment carrying ``marker`` for meeting ``native``: an XADD for the collector, or the
    event it would publish."""
    if use_xadd:
        seg = Segment(start=float(n), end=float(n) + 0.9, text=marker, language="en", completed=True)
        msg = TranscriptionMessage(
            uid=f"{session}-{native}", platform="google_meet", meeting_id=native, token=token, segments=[seg]
        )
        pipe.xadd(STREAM_NAME_DEFAULT, to_fields(msg))
    else:
        payload = {"segments": [{"start": float(n), "end": n + 0.9, "text": marker, "completed": True}]}
        event = build_event("transcript.mutable", ids[native], "google_meet", native, payload)
        pipe.publish(meeting_channel(ids[native]), json.dumps(event))


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
    parser.add_argument(
        "--spread",
        type=float,
        default=0.0,
        help="publish a round's segments evenly over this many seconds (0: all at once, the worst case)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    arguments = parser.parse_args()
    with stores() as (db, redis_url):
        run(main(arguments, db, redis_url))
