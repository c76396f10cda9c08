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

    .venv/bin/python bench/api.py                       # everything, default sizes, aiohttp and wrk
    .venv/bin/python bench/api.py --client wrk --wrk-seconds 3 --baseline /tmp/old/src   # ~4 min
    .venv/bin/python bench/api.py --route meetings --concurrency 50 --requests 3000
    .venv/bin/python bench/api.py --baseline /tmp/old/src   # before/after, cell by cell
    .venv/bin/python bench/api.py --rate-limits --only gateway --baseline /tmp/old/src  # limits' cost

With ``--baseline``, a second set of the same services runs from another
source tree (e.g. ``git archive <commit> src | tar -x -C /tmp/old``) on the
same database, and each cell is measured on the baseline and then on this
tree back to back, so both see the same machine load; the last column is the
throughput ratio (this tree / baseline).

Two load generators: aiohttp in this process (portable, always there; on a
2-vCPU machine it spends about as much CPU as the services it measures), and
``wrk`` when it is installed (C, a few percent of a core; ``scripts/setup.sh``
installs it). ``--client`` picks one or both; a wrk cell runs for
``--wrk-seconds`` rather than a fixed count. "pg ms/req" is PostgreSQL's CPU
per request (its server process and backends), and the load average is printed
before and after: other programs on the machine lower req/s, not CPU ms/req.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
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
from sqlalchemy.engine import make_url

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
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0  # no HTTP answer at all
    wall: float = 0.0
    count: int = 0
    p50: float = 0.0
    p99: float = 0.0
    cpu_ms: float = 0.0  # the serving processes' CPU per request
    pg_ms: float = 0.0  # PostgreSQL's CPU per request

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code != 200) + self.failures

    @property
    def rps(self) -> float:
        return self.count / self.wall

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)


async def load(url: str, key: str, concurrency: int, total: int) -> Cell:
    """``total`` GETs over ``concurrency`` keep-alive connections; the body is read in full."""
    cell = Cell()
    latencies: list[float] = []
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
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(client.get(url) for _ in range(min(concurrency, 20))))  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cell.wall = time.perf_counter() - started
    cell.count, cell.p50, cell.p99 = len(latencies), percentile(latencies, 50), percentile(latencies, 99)
    return cell


# Counts 5xx apart from other non-200 answers and prints one parseable line at the end.
_WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) s5 = 0; other = 0 end
function response(status, headers, body)
  if status >= 500 then s5 = s5 + 1 elseif status ~= 200 then other = other + 1 end
end
function done(summary, latency, requests)
  local a, b = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("s5"); b = b + t:get("other") end
  local e = summary.errors
  io.write(string.format("VEXA %d %d %d %d %d %d\\n", summary.requests, summary.duration, a, b,
    e.connect + e.read + e.write + e.timeout, 0))
  for _, p in ipairs({50, 99}) do io.write(string.format("VEXA_P %d %d\\n", p, latency:percentile(p))) end
end
"""


async def load_wrk(url: str, key: str, concurrency: int, seconds: int, script: Path) -> Cell:
    """One wrk run (one thread: the machine has few cores to spare); latencies are its percentiles."""
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
        "-H", f"X-API-Key: {key}", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    cell = Cell()
    percentiles: dict[int, float] = {}
    for line in out.decode().splitlines():
        parts = line.split()
        if parts[:1] == ["VEXA"]:
            requests, duration_us, s5, other, failures, _ = map(int, parts[1:])
            cell.wall, cell.failures = duration_us / 1e6, failures
            cell.statuses.update({500: s5, 400: other, 200: requests - s5 - other})  # 5xx, other non-200
        elif parts[:1] == ["VEXA_P"]:
            percentiles[int(parts[1])] = int(parts[2]) / 1e6
    if not percentiles:
        raise RuntimeError(f"wrk gave no figures: {out.decode()[-500:]}")
    cell.count = sum(cell.statuses.values())
    cell.p50, cell.p99 = percentiles[50], percentiles[99]
    return cell


def postgres_processes(db_url: str) -> list[psutil.Process]:
    """The server listening on the database's port and its backends (empty if not on this machine)."""
    port = make_url(db_url).port or 5432
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            server = psutil.Process(conn.pid)
            return [server, *server.children()]
    return []


def cpu_of(processes: list[psutil.Process]) -> dict[int, float]:
    times = {}
    for proc in processes:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        times[proc.pid] = t.user + t.system
    return times


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


def row(route: str, concurrency: int, client: str, target: str, cell: Cell, ratio: str = "") -> str:
    return (
        f"{route:<13}{concurrency:>5}  {client:<8}{target:<21}{cell.count:>9}"
        f"{cell.rps:>9.0f}{cell.p50 * 1000:>9.1f}{cell.p99 * 1000:>9.1f}{cell.errors:>8}"
        f"{cell.server_errors:>6}{cell.cpu_ms:>13.2f}{cell.pg_ms:>9.2f}{ratio:>14}"
    )


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


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

            clients = ["aiohttp", "wrk"] if args.client == "both" else [args.client]
            if "wrk" in clients and shutil.which("wrk") is None:
                print("wrk is not installed (scripts/setup.sh installs it): aiohttp only")
                clients = ["aiohttp"]
            script = logs / "vexa.lua"
            script.write_text(_WRK_SCRIPT)
            print(
                f"user with {args.meetings} meetings; transcript of {args.segments} segments; "
                f"LOG_LEVEL={args.log_level}; rate limits {'on' if args.rate_limits else 'off'}"
                + (f"; baseline {args.baseline}" if args.baseline else "")
                + f"; {os.cpu_count()} CPUs; load average {load_average()}"
            )
            print(
                f"{'route':<13}{'conc':>5}  {'client':<8}{'target':<21}{'requests':>9}{'req/s':>9}"
                f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'5xx':>6}{'cpu ms/req':>13}{'pg ms':>9}"
                f"{'req/s, cpu' if args.baseline else '':>14}"
            )
            for route in args.route:
                path, service = ROUTES[route]
                total = args.requests or DEFAULT_REQUESTS[route]
                for concurrency in args.concurrency:
                    targets = [service, "gateway"]
                    if args.only:
                        targets = [t for t in targets if (t == "gateway") == (args.only == "gateway")]
                    for client, target in ((c, t) for c in clients for t in targets):
                        cells = {}
                        serving = (target, service) if target == "gateway" else (target,)
                        for tag, services in trees.items():
                            url = services.urls[target] + path
                            postgres = postgres_processes(db_url)  # backends come and go with the pools
                            cpu_before, pg_before = services.cpu_s(*serving), cpu_of(postgres)
                            if client == "wrk":
                                try:
                                    cell = await load_wrk(url, key, concurrency, args.wrk_seconds, script)
                                except RuntimeError as exc:  # e.g. the target is gone: say so, go on
                                    print(f"{route:<13}{concurrency:>5}  wrk     {tag + target}: {exc}")
                                    continue
                            else:
                                cell = await load(url, key, concurrency, total)
                            cell.cpu_ms = (services.cpu_s(*serving) - cpu_before) * 1000 / max(cell.count, 1)
                            pg_after = cpu_of(postgres_processes(db_url))
                            pg_spent = sum(t - pg_before.get(pid, 0.0) for pid, t in pg_after.items())
                            cell.pg_ms = pg_spent * 1000 / max(cell.count, 1)
                            cells[tag] = cell
                            ratio = ""
                            if tag == "" and "baseline " in cells:
                                before = cells["baseline "]
                                ratio = f"x{cell.rps / before.rps:.2f}, x{cell.cpu_ms / before.cpu_ms:.2f}"
                            print(row(route, concurrency, client, tag + target, cell, ratio), flush=True)
                            if cell.errors:
                                print(f"{'':<19}statuses {dict(cell.statuses)}, no answer {cell.failures}")
            print(f"load average at the end: {load_average()}")
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
    parser.add_argument("--client", choices=["aiohttp", "wrk", "both"], default="both", help="load generator")
    parser.add_argument("--wrk-seconds", type=int, default=4, help="length of one wrk cell")
    arguments = parser.parse_args()
    if arguments.baseline:
        arguments.baseline = str(Path(arguments.baseline).resolve())
    with stores() as (db, redis):
        run(main(arguments, db, redis))
