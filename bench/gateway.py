"""Gateway overhead: GET /meetings through the api-gateway vs straight to the collector.

Starts embedded PostgreSQL + Valkey (unless DATABASE_URL / REDIS_URL are set), the
collector, admin-api and the gateway as real processes on 127.0.0.1, then runs C
concurrent clients (default 50) for a fixed number of requests against each target
and prints p50/p99 latency, requests/s and the gateway/direct ratios.

    .venv/bin/python bench/gateway.py --concurrency 50 --requests 3000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _stack import api_services, has_service, make_user_with_meeting, percentile, run, service_env, stores


async def load(url: str, token: str, concurrency: int, total: int) -> tuple[list[float], float, int]:
    """``total`` GETs spread over ``concurrency`` workers; returns latencies (s), wall time, errors."""
    latencies: list[float] = []
    errors = 0
    remaining = total
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers={"X-API-Key": token}, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors += 1

        for _ in range(min(concurrency, 20)):  # warm-up: connections and auth caches
            await client.get(url)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, errors


async def main(args: argparse.Namespace, db_url: str, redis_url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="vexa-bench-logs-") as logs:
        env = service_env(db_url, redis_url)
        with api_services(env, Path(logs)) as (collector, _admin, gateway):
            _, token, _ = await make_user_with_meeting(db_url, meetings=args.meetings)
            results = {}
            for name, base in (
                ("direct (collector)", collector.base_url),
                ("through gateway", gateway.base_url),
            ):
                lat, wall, errors = await load(base + "/meetings", token, args.concurrency, args.requests)
                results[name] = (percentile(lat, 50), percentile(lat, 99), len(lat) / wall, errors)
            print(
                f"GET /meetings, {args.concurrency} concurrent clients, {args.requests} requests each, "
                f"{args.meetings} meetings in the list"
            )
            print(f"{'target':<22}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}{'errors':>8}")
            for name, (p50, p99, rps, errors) in results.items():
                print(f"{name:<22}{p50 * 1000:>10.1f}{p99 * 1000:>10.1f}{rps:>10.0f}{errors:>8}")
            direct, via = results["direct (collector)"], results["through gateway"]
            print(
                f"ratio gateway/direct: p50 x{via[0] / direct[0]:.2f}, p99 x{via[1] / direct[1]:.2f}, "
                f"throughput x{via[2] / direct[2]:.2f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000, help="requests per target (bounded)")
    parser.add_argument("--meetings", type=int, default=5, help="meetings the user has (list size)")
    arguments = parser.parse_args()
    if not has_service("vexa.collector.main"):
        sys.exit(
            "vexa.collector.main is not available: this bench needs the collector (`vexa serve collector`)."
        )
    with stores() as (db, redis):
        run(main(arguments, db, redis))
