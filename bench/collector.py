"""How fast does the transcription collector move segments from the stream into PostgreSQL?

Three figures, all on this machine, same payload size:

- raw XADD ceiling: pipelined XADD (1000 per round trip) into a scratch stream -- what
  Redis alone accepts; no consumer can beat it;
- consumer alone: the collector's stream worker (in this process) draining N queued
  messages into the mutable Redis hash (validate, authenticate, look up, MULTI + ACK),
  each batch's MULTI overlapped with handling the next, as ``run()`` does, with the
  garbage collector frozen after setup as the collector process freezes it after startup;
- persister alone: the background persister moving those segments from Redis to rows;
- end to end: `vexa serve collector` as a real process with IMMUTABILITY_THRESHOLD=0;
  time from the first XADD until all N segments are rows in ``transcriptions``; then the
  same with two collector processes in one consumer group, printed as a ratio to one;
- with ``--cpu-per-collector F``: one and two collectors again, each held to F of a core by a
  cgroup of its own (``_cpu_quota``), so that the ratio says whether collectors contend with
  each other, not whether the box has a spare core (on 2 vCPUs it has none: one collector,
  Valkey and PostgreSQL fill both). Needs root and a writable cgroup cpu controller.

One segment per message, spread round-robin over M meetings of one user.
Starts its own embedded PostgreSQL + Valkey unless DATABASE_URL / REDIS_URL are set.

    .venv/bin/python bench/collector.py                    # 100k segments, 100 meetings
    .venv/bin/python bench/collector.py --segments 10000 --meetings 20
    .venv/bin/python bench/collector.py --segments 50000 --meetings 1000  # many short sessions
    .venv/bin/python bench/collector.py --cpu-per-collector 0.3    # plus the capped pair
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
from redis.asyncio import Redis

from _cpu_quota import cpu_quota, throttled_s
from vexa.auth import TokenVerifier, generate_token, hash_token
from vexa.collector.app import Collector
from vexa.collector.settings import CollectorSettings
from vexa.config import to_asyncpg_url
from vexa.db import Database
from vexa.db.migrate import upgrade
from vexa.embedded import EmbeddedPostgres, EmbeddedValkey, free_port
from vexa.streams import Segment, SessionStartMessage, TranscriptionMessage, to_fields
from vexa.testing.processes import ServiceProcess

TEXT = "We agreed to ship the export feature on Friday after the review."


class ServerCPU:
    """CPU seconds of the embedded Valkey and PostgreSQL (with its exited and live backends).

    On a 2-vCPU box the collector shares the cores with both: their cost per segment
    (the Lua script is Valkey's CPU, the upsert PostgreSQL's) bounds the end-to-end rate too.
    Zero for a server given by URL (not ours to measure).
    """

    def __init__(self, valkey_pid: int | None, pg_pid: int | None) -> None:
        self.valkey = psutil.Process(valkey_pid) if valkey_pid else None
        self.pg = psutil.Process(pg_pid) if pg_pid else None

    def now(self) -> tuple[float, float]:
        """(Valkey, PostgreSQL) CPU seconds so far."""
        valkey = sum(self.valkey.cpu_times()[:2]) if self.valkey else 0.0
        pg = 0.0
        if self.pg:
            t = self.pg.cpu_times()
            pg = t.user + t.system + t.children_user + t.children_system
            for child in self.pg.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    pg += sum(child.cpu_times()[:2])
        return valkey, pg

    def per_segment(self, since: tuple[float, float], n: int) -> str:
        (v0, p0), (v1, p1) = since, self.now()
        if not (self.valkey or self.pg):
            return ""
        return f"; Valkey {(v1 - v0) * 1e6 / n:.0f} + PostgreSQL {(p1 - p0) * 1e6 / n:.0f} µs/segment"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def setup_data(db_url: str, meetings: int, token: str | None = None) -> tuple[str, list[str]]:
    conn = await asyncpg.connect(_plain(db_url))
    try:
        await conn.execute("TRUNCATE transcriptions, meeting_sessions, meetings, api_tokens, users CASCADE")
        token = token or generate_token()
        user_id = await conn.fetchval(
            "INSERT INTO users (email, max_concurrent_bots) VALUES ($1, 1000) RETURNING id",
            f"bench-{uuid.uuid4().hex[:6]}@example.com",
        )
        await conn.execute(
            "INSERT INTO api_tokens (token_hash, token_prefix, user_id) VALUES ($1, $2, $3)",
            hash_token(token),
            token[:6],
            user_id,
        )
        natives = [f"{100_000_000 + i}" for i in range(meetings)]  # zoom-style numeric ids
        await conn.executemany(
            "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
            "VALUES ($1, 'zoom', $2, 'active')",
            [(user_id, n) for n in natives],
        )
        return token, natives
    finally:
        await conn.close()


def build_messages(token: str, natives: list[str], n: int, tag: str) -> list[dict[str, str]]:
    out = []
    for native in natives:
        start = SessionStartMessage(
            uid=f"{tag}-{native}",
            platform="zoom",
            meeting_id=native,
            token=token,
            start_timestamp=datetime.now(UTC),
        )
        out.append(to_fields(start))
    for i in range(n):
        native = natives[i % len(natives)]
        k = i // len(natives)
        seg = Segment(start=k * 2.0, end=k * 2.0 + 1.5, text=f"{TEXT} ({i})", language="en", completed=True)
        msg = TranscriptionMessage(
            uid=f"{tag}-{native}", platform="zoom", meeting_id=native, token=token, segments=[seg]
        )
        out.append(to_fields(msg))
    return out


async def xadd_all(redis: Redis, stream: str, messages: list[dict[str, str]], batch: int = 1000) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(messages), batch):
        async with redis.pipeline(transaction=False) as pipe:
            for fields in messages[i : i + batch]:
                pipe.xadd(stream, fields)
            await pipe.execute()
    return time.perf_counter() - t0


async def bench(
    db_url: str,
    redis_url: str,
    n: int,
    meetings: int,
    read_count: int,
    servers: ServerCPU,
    cpu_per_collector: float | None,
) -> None:
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    token, natives = await setup_data(db_url, meetings)
    size = len(build_messages(token, natives[:1], 1, "x")[1]["payload"])
    print(
        f"{n} segments over {meetings} meetings, payload ~{size} bytes, REDIS_STREAM_READ_COUNT={read_count}"
    )

    # 1. Raw XADD ceiling.
    raw = build_messages(token, natives, n, "raw")[len(natives) :]
    xadd_s = await xadd_all(redis, "bench:raw", raw)
    await redis.delete("bench:raw")
    ceiling = n / xadd_s
    print(f"raw pipelined XADD:   {ceiling:10.0f} segments/s  ({xadd_s:.2f} s)")

    # 2. The consumer alone (in this process), messages queued beforehand.
    settings = CollectorSettings(
        DATABASE_URL=db_url, REDIS_URL=redis_url, REDIS_STREAM_NAME="bench:consumer",
        CONSUMER_NAME="bench", REDIS_STREAM_READ_COUNT=read_count, DB_POOL_SIZE=5,
    )  # fmt: skip
    db = Database(settings.async_database_url(), pool_size=5)
    collector = Collector(settings, db, redis, TokenVerifier(db.sessionmaker))
    await collector.segments.ensure_group()
    await xadd_all(redis, "bench:consumer", build_messages(token, natives, n, "c"))
    # As the collector's startup does (app.py): what is built by now lives as long as the
    # process, and unfrozen, every full collection the batches trigger walks all of it.
    gc.collect()
    gc.freeze()
    t0, cpu0, srv0 = time.perf_counter(), time.process_time(), servers.now()
    worker = collector.segments
    expected = n + len(natives)
    for _ in range(expected + 10):  # bounded: every round handles at least one message
        if worker.handled + worker.dead_lettered >= expected:
            break
        await worker.read_once(block_ms=1, overlap=True)  # as the worker's run() reads
    await worker.flush()
    consumer_s, consumer_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert collector.segments.handled == n + len(natives), collector.segments.handled
    consumer = n / consumer_s
    print(
        f"consumer alone:       {consumer:10.0f} segments/s  ({consumer_s:.2f} s)  "
        f"= {consumer / ceiling:.3f} x XADD; CPU {consumer_cpu * 1e6 / n:.0f} µs/segment"
        f"{servers.per_segment(srv0, n)}"
    )

    # 3. The persister alone (in this process): the segments just written, Redis -> rows.
    t0, cpu0, srv0 = time.perf_counter(), time.process_time(), servers.now()
    persisted = 0
    for _ in range(100):  # bounded: each round persists what it found
        persisted += await collector.persister.run_once(force=True)
        if persisted >= n:
            break
    persister_s, persister_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert persisted == n, f"persisted {persisted}/{n}"
    print(
        f"persister alone:      {n / persister_s:10.0f} segments/s  ({persister_s:.2f} s); "
        f"CPU {persister_cpu * 1e6 / n:.0f} µs/segment{servers.per_segment(srv0, n)}"
    )
    await db.dispose()

    # 4. End to end through real collector processes: one, then two in the same consumer group;
    # with --cpu-per-collector, the pair again with each collector held to that share of a core.
    for cap in (None, cpu_per_collector) if cpu_per_collector else (None,):
        held = f" at {cap:g} core each" if cap else ""
        rates = {}
        for processes in (1, 2):
            await redis.flushdb()
            await setup_data(db_url, meetings, token)
            srv0 = servers.now()
            rate, cpu, throttled = await end_to_end(
                db_url, redis_url, redis, token, natives, n, read_count,
                processes=processes, cpu_quota_cores=cap,
            )  # fmt: skip
            rates[processes] = rate
            waited = f", throttled {throttled:.0f}% of the run" if cap else ""
            print(
                f"end to end, {processes} collector(s){held}: {rate:10.0f} segments/s  "
                f"= {rate / ceiling:.3f} x XADD; collectors CPU {cpu:.0f} µs/segment{waited}"
                f"{servers.per_segment(srv0, n)}"
            )
        print(f"2 collectors in one group vs 1{held}: {rates[2] / rates[1]:.2f} x")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    await redis.aclose()


async def end_to_end(
    db_url: str,
    redis_url: str,
    redis: Redis,
    token: str,
    natives: list[str],
    n: int,
    read_count: int,
    *,
    processes: int,
    cpu_quota_cores: float | None = None,
) -> tuple[float, float, float]:
    """(segments/s from the first XADD until all ``n`` are rows, the collectors' CPU µs per
    segment, the share of the run in % that a capped collector waited for its quota, on average)."""
    env = {
        "DATABASE_URL": db_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING",
        "REDIS_STREAM_READ_COUNT": str(read_count), "IMMUTABILITY_THRESHOLD": "0",
        "BACKGROUND_TASK_INTERVAL": "0.5", "REDIS_STREAM_BLOCK_MS": "100",
    }  # fmt: skip
    messages = build_messages(token, natives, n, f"e2e{processes}")
    logs = Path(tempfile.gettempdir())
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                ServiceProcess("collector", free_port(), env, log_path=logs / f"bench-collector-{i}.log")
            )
            for i in range(processes)
        ]
        groups = [
            stack.enter_context(cpu_quota(p.pid, cpu_quota_cores)) for p in procs if cpu_quota_cores and p.pid
        ]
        throttled0 = sum(map(throttled_s, groups))
        conn = await asyncpg.connect(_plain(db_url))  # one connection: a new one per poll costs a fork
        first_id = await conn.fetchval(_LAST_ID)
        cpu0 = _cpu_s(procs)
        t0 = time.perf_counter()
        await xadd_all(redis, "transcription_segments", messages)
        deadline = t0 + 1800
        rows = 0
        try:
            while time.perf_counter() < deadline:
                # The id sequence is a cheap upper bound (a count(*) per poll would be PostgreSQL
                # CPU taken from the run); count only once it says all could be there.
                if await conn.fetchval(_LAST_ID) - first_id >= n:
                    rows = await conn.fetchval("SELECT count(*) FROM transcriptions")
                    if rows >= n:
                        break
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        e2e_s = time.perf_counter() - t0
        cpu_s = _cpu_s(procs) - cpu0
        throttled = (sum(map(throttled_s, groups)) - throttled0) / max(1, len(groups))
    assert rows == n, f"only {rows}/{n} rows"
    return n / e2e_s, cpu_s * 1e6 / n, 100 * throttled / e2e_s


_LAST_ID = "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM transcriptions_id_seq"


def _cpu_s(procs: list[ServiceProcess]) -> float:
    """User + system CPU seconds of the collector processes so far."""
    return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--meetings", type=int, default=100)
    parser.add_argument(
        "--read-count", type=int, default=500, help="REDIS_STREAM_READ_COUNT for the consumer"
    )
    parser.add_argument(
        "--cpu-per-collector",
        type=float,
        metavar="CORES",
        help="also run one and two collectors each held to this fraction of a core (cgroup; root)",
    )
    args = parser.parse_args()

    db_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="vexa-bench-") as tmp:
        Path(tmp).chmod(0o755)
        pg = valkey = None
        try:
            if not db_url:
                pg = EmbeddedPostgres(Path(tmp) / "pg", database="vexa_bench").start()
                db_url = pg.url
            if not redis_url:
                valkey = EmbeddedValkey(Path(tmp) / "valkey", persist=False).start()
                redis_url = valkey.url
            db_url = to_asyncpg_url(db_url)
            upgrade(db_url)
            servers = ServerCPU(valkey.pid if valkey else None, pg.pid if pg else None)
            asyncio.run(
                bench(
                    db_url, redis_url, args.segments, args.meetings, args.read_count, servers,
                    args.cpu_per_collector,
                )
            )  # fmt: skip
        finally:
            if valkey:
                valkey.stop()
            if pg:
                pg.stop()


if __name__ == "__main__":
    sys.exit(main())
