"""API throughput: the read paths clients poll, through the gateway and straight to each service.

Starts embedded PostgreSQL + Valkey (unless DATABASE_URL / REDIS_URL are set) and
the collector, admin-api, bot-manager and gateway as real processes on 127.0.0.1
(transcription is left out: it serves WebSockets, not these routes). One user
has a few meetings, one of them an hour long with about 1,000 transcript
segments. For each route and each concurrency (default 10, 50, 200) a bounded
number of requests is sent, first straight to the service that answers it, then
through the gateway, and the table shows requests/s, p50/p99 latency and errors
(any non-200; 5xx counted apart). "cpu ms/req" is the CPU time the services
that served the cell (the target, plus the service behind it for the gateway)
spent per request: unlike requests/s it hardly moves when other programs share
the machine, so it is the figure to compare between runs (PostgreSQL's own CPU
is not included).

    .venv/bin/python bench/api.py                       # everything, default sizes
    .venv/bin/python bench/api.py --route meetings --concurrency 50 --requests 3000
    .venv/bin/python bench/api.py --baseline /tmp/old/src   # before/after, cell by cell
    .venv/bin/python bench/api.py --rate-limits --only gateway --baseline /tmp/old/src  # limits' cost

With ``--baseline``, a second set of the same services runs from another
source tree (e.g. ``git archive <commit> src | tar -x -C /tmp/old``) on the
same database, and each cell is measured on the baseline and then on this
tree back to back, so both see the same machine load; the last column is the
throughput ratio (this tree / baseline).

The load generator is aiohttp in this process: on a 2-vCPU machine it competes
with the stack for the same cores, so compare runs made on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psutil
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))
from _stack import make_user_with_meeting, percentile, run, service_env, start, stores
from vexa.db import Database

NATIVE = "abc-defg-hij"
ROUTES = {
    "meetings": ("/meetings", "collector"),
    "transcript": (f"/transcripts/google_meet/{NATIVE}", "collector"),
    "bots-status": ("/bots/status", "bot-manager"),
}
# Requests per cell: the transcript answer is ~200 KB, so fewer of those.
DEFAULT_REQUESTS = {"meetings": 1000, "transcript": 200, "bots-status": 1000}


@dataclass
class Cell:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0  # no HTTP answer at all
    wall: float = 0.0
    cpu_ms: float = 0.0  # the serving processes' CPU per request

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code != 200) + self.failures

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)


async def load(url: str, key: str, concurrency: int, total: int) -> Cell:
    """``total`` GETs over ``concurrency`` keep-alive connections; the body is read in full."""
    cell = Cell()
    remaining = total
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, headers={"X-API-Key": key}, timeout=timeout
    ) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                try:
                    async with client.get(url) as response:
                        await response.read()
                        cell.statuses[response.status] += 1
                except (aiohttp.ClientError, TimeoutError):
                    cell.failures += 1
                cell.latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(client.get(url) for _ in range(min(concurrency, 20))))  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cell.wall = time.perf_counter() - started
    return cell


async def add_long_transcript(db_url: str, meeting_id: int, segments: int) -> None:
    """An hour-long meeting: ``segments`` stored segments of one bot session."""
    db = Database(db_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO meeting_sessions (meeting_id, session_uid, session_start_time) "
                    "VALUES (:m, 's1', :t)"
                ),
                {"m": meeting_id, "t": datetime.now(UTC)},
            )
            step = 3600 / segments
            await conn.execute(
                text(
                    "INSERT INTO transcriptions (meeting_id, start_time, end_time, text, speaker, language, "
                    "session_uid) VALUES (:m, :s, :e, :t, :sp, 'en', 's1')"
                ),
                [
                    {
                        "m": meeting_id,
                        "s": i * step,
                        "e": i * step + step * 0.9,
                        "t": f"Segment {i}: we agreed to ship the release on Thursday after the review.",
                        "sp": f"Speaker {i % 4}",
                    }
                    for i in range(segments)
                ],
            )
    finally:
        await db.dispose()


@dataclass
class Services:
    urls: dict[str, str]
    pids: dict[str, int]

    def cpu_s(self, *names: str) -> float:
        total = 0.0
        for name in names:
            times = psutil.Process(self.pids[name]).cpu_times()
            total += times.user + times.system
        return total


def start_services(env: dict[str, str], logs: Path, procs: list) -> Services:
    """collector, admin-api, bot-manager and a gateway in front of them."""
    urls, pids = {}, {}
    for name in ("collector", "admin", "bot-manager"):
        proc = start(name, env, logs)
        procs.append(proc)
        urls[name], pids[name] = proc.base_url, proc.proc.pid
    gateway = start(
        "gateway",
        {
            **env,
            "TRANSCRIPTION_COLLECTOR_URL": urls["collector"],
            "ADMIN_API_URL": urls["admin"],
            "BOT_MANAGER_URL": urls["bot-manager"],
        },
        logs,
    )
    procs.append(gateway)
    urls["gateway"], pids["gateway"] = gateway.base_url, gateway.proc.pid
    return Services(urls, pids)


def row(route: str, concurrency: int, target: str, cell: Cell, ratio: str = "") -> str:
    return (
        f"{route:<13}{concurrency:>5}  {target:<21}{len(cell.latencies):>9}"
        f"{cell.rps:>9.0f}{percentile(cell.latencies, 50) * 1000:>9.1f}"
        f"{percentile(cell.latencies, 99) * 1000:>9.1f}{cell.errors:>8}{cell.server_errors:>6}"
        f"{cell.cpu_ms:>13.2f}{ratio:>14}"
    )


async def main(args: argparse.Namespace, db_url: str, redis_url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="vexa-bench-logs-") as logs_dir:
        logs = Path(logs_dir)
        env = service_env(db_url, redis_url, LOG_LEVEL=args.log_level)
        if args.rate_limits:  # limits on, too high to refuse anything: what checking them costs
            huge = str(10**9)
            env.update(RATE_LIMIT_PER_KEY=huge, RATE_LIMIT_KEY_BURST=huge, RATE_LIMIT_PER_IP=huge)
            env.update(RATE_LIMIT_IP_BURST=huge)
        procs: list = []
        try:
            trees = {"": start_services(env, logs, procs)}
            if args.baseline:
                (logs / "baseline").mkdir()
                base_env = {**env, "PYTHONPATH": args.baseline}
                trees = {"baseline ": start_services(base_env, logs / "baseline", procs), **trees}
            _, key, meeting_id = await make_user_with_meeting(db_url, NATIVE, meetings=args.meetings)
            await add_long_transcript(db_url, meeting_id, args.segments)

            print(
                f"user with {args.meetings} meetings; transcript of {args.segments} segments; "
                f"LOG_LEVEL={args.log_level}; rate limits {'on' if args.rate_limits else 'off'}"
                + (f"; baseline {args.baseline}" if args.baseline else "")
            )
            print(
                f"{'route':<13}{'conc':>5}  {'target':<21}{'requests':>9}{'req/s':>9}{'p50 ms':>9}"
                f"{'p99 ms':>9}{'errors':>8}{'5xx':>6}{'cpu ms/req':>13}"
                f"{'req/s, cpu' if args.baseline else '':>14}"
            )
            for route in args.route:
                path, service = ROUTES[route]
                total = args.requests or DEFAULT_REQUESTS[route]
                for concurrency in args.concurrency:
                    targets = [service, "gateway"]
                    if args.only:
                        targets = [t for t in targets if (t == "gateway") == (args.only == "gateway")]
                    for target in targets:
                        cells = {}
                        serving = (target, service) if target == "gateway" else (target,)
                        for tag, services in trees.items():
                            cpu_before = services.cpu_s(*serving)
                            cell = await load(services.urls[target] + path, key, concurrency, total)
                            cell.cpu_ms = (services.cpu_s(*serving) - cpu_before) * 1000 / len(cell.latencies)
                            cells[tag] = cell
                            ratio = ""
                            if tag == "" and "baseline " in cells:
                                before = cells["baseline "]
                                ratio = f"x{cell.rps / before.rps:.2f}, x{cell.cpu_ms / before.cpu_ms:.2f}"
                            print(row(route, concurrency, tag + target, cell, ratio), flush=True)
                            if cell.errors:
                                print(f"{'':<19}statuses {dict(cell.statuses)}, no answer {cell.failures}")
        finally:
            for proc in reversed(procs):
                proc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--route", nargs="+", choices=list(ROUTES), default=list(ROUTES))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--requests", type=int, default=0, help="requests per cell (default: per route)")
    parser.add_argument("--meetings", type=int, default=5, help="meetings the user has (list size)")
    parser.add_argument("--segments", type=int, default=1000, help="segments in the long transcript")
    parser.add_argument("--only", choices=["gateway", "direct"], help="one target instead of both")
    parser.add_argument("--log-level", default="INFO", help="services' LOG_LEVEL (what `vexa up` uses)")
    parser.add_argument(
        "--rate-limits", action="store_true", help="gateway rate limits on (too high to refuse): their cost"
    )
    parser.add_argument("--baseline", help="another tree's src/ to measure cell by cell against this one")
    arguments = parser.parse_args()
    if arguments.baseline:
        arguments.baseline = str(Path(arguments.baseline).resolve())
    with stores() as (db, redis):
        run(main(arguments, db, redis))
