"""Webhook delivery throughput: N events emitted, signed, delivered and logged by one worker.

    python bench/webhooks.py [--events 500] [--concurrency 8]

Real PostgreSQL and Valkey (embedded unless DATABASE_URL / REDIS_URL are set); the
receiver is a STAND-IN that verifies every signature with ``standardwebhooks``, served
in the same event loop as the worker (so the figure includes its cost, on the same
cores). Prints emit latency (the cost a request handler pays) and deliveries per second.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from sqlalchemy import text

from _stack import percentile, stores
from vexa.db import Database
from vexa.testing.asgi import serve_app
from vexa.testing.webhook_receiver import WebhookReceiverStandIn
from vexa.webhooks import config
from vexa.webhooks.emit import WebhookEmitter
from vexa.webhooks.worker import WebhookWorker


async def run(events: int, concurrency: int, db_url: str, redis_url: str) -> None:
    from redis.asyncio import Redis

    db = Database(db_url, pool_size=10)
    redis = Redis.from_url(redis_url, decode_responses=True)
    async with db.engine.begin() as conn:
        user_id = (
            await conn.execute(
                text("INSERT INTO users (email) VALUES (:e) RETURNING id"),
                {"e": f"bench-{uuid.uuid4().hex}@x.io"},
            )
        ).scalar_one()
    receiver = WebhookReceiverStandIn()
    async with serve_app(receiver.app) as base:
        async with db.sessionmaker() as session:
            _, receiver.secret = await config.save(session, user_id, f"{base}/hook", None, None)
        emitter = WebhookEmitter(redis, db.sessionmaker)
        latencies = []
        for i in range(events):
            started = time.perf_counter()
            await emitter.emit(user_id, "meeting.completed", {"n": i}, key=f"bench:{i}")
            latencies.append((time.perf_counter() - started) * 1000)
        worker = WebhookWorker(redis, db.sessionmaker, allow_private=True, concurrency=concurrency)
        started = time.perf_counter()
        task = asyncio.create_task(worker.run())
        while len(receiver.processed) < events and time.perf_counter() - started < 300:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await worker.close()
        await task
    assert all(r.status == 200 for r in receiver.received), "a delivery failed verification"
    await redis.aclose()
    await db.dispose()
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    print(f"emit latency: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    print(
        f"delivered {len(receiver.processed)}/{events} verified events in {elapsed:.2f} s: "
        f"{len(receiver.processed) / elapsed:.0f} deliveries/s (concurrency {concurrency})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with stores() as (db_url, redis_url):
        asyncio.run(run(args.events, args.concurrency, db_url, redis_url))


if __name__ == "__main__":
    main()
