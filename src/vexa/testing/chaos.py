"""The fault-injection soak: scripted sessions through a stack that is killed and restarted.

While the sessions of ``chaos_traffic`` publish, the soak SIGKILLs collectors at
random moments (and runs two at once for a while), restarts Valkey and PostgreSQL,
keeps every collector down while more entries arrive than the producer's old
``MAXLEN`` would have kept, and SIGKILLs the bot-manager while its bots run. Then
it lets everything drain and compares the transcripts API and PostgreSQL with the
ground truth. ``bench/chaos.py`` runs it at length; the test suite runs a short one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy import text

from vexa.auth import generate_token, hash_token
from vexa.collector.trimming import measure
from vexa.db import Database
from vexa.testing.chaos_stack import ChaosStack
from vexa.testing.chaos_traffic import SEGMENT_STREAM, SPEAKER_STREAM, GroundTruth, MeetingTarget, Session
from vexa.transcription.publisher import StreamPublisher

log = logging.getLogger(__name__)
GROUP = "collector_group"
RECOVERY_LIMIT_S = 900.0  # a backlog drains at the collector's pace, slow on a shared 2-core machine


@dataclass
class SoakConfig:
    work_dir: Path
    sessions: int = 20
    meetings: int = 4
    drafts: int = 3
    interval_s: float = 0.4
    collector_kills: int = 5
    old_maxlen: int = 2000
    phase_s: float = 4.0
    seed: int = 7


@dataclass
class SoakReport:
    sessions: int = 0
    messages: int = 0
    segments: int = 0
    lost: int = 0
    duplicated: int = 0
    stale: int = 0
    unexpected: int = 0
    db_lost: int = 0
    db_stale: int = 0
    wrong_status: int = 0
    orphans: int = 0
    dead_letters: int = 0
    publisher_dropped: int = 0
    collector_kills: int = 0
    recovery_s: dict[str, float] = field(default_factory=dict)
    max_lag: int = 0
    max_pending: int = 0
    outage_stream_length: int = 0
    old_maxlen: int = 0
    drain_s: float = 0.0
    duration_s: float = 0.0

    @property
    def exact(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.stale
            or self.unexpected
            or self.db_lost
            or self.db_stale
            or self.wrong_status
            or self.orphans
            or self.dead_letters
        )

    def lines(self) -> list[str]:
        worst = max(self.recovery_s.values(), default=0.0)
        return [
            f"sessions {self.sessions}, messages {self.messages}, segments {self.segments}, "
            f"collector SIGKILLs {self.collector_kills}, run {self.duration_s:.0f} s",
            f"API: lost {self.lost}, duplicated {self.duplicated}, older text {self.stale}, "
            f"unexpected {self.unexpected}; PostgreSQL: lost {self.db_lost}, older text {self.db_stale}",
            f"meetings in the wrong final status {self.wrong_status}, orphan bot processes {self.orphans}, "
            f"dead letters {self.dead_letters}, publisher drops {self.publisher_dropped}",
            "recovery after each fault (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in self.recovery_s.items())
            + f"; worst {worst:.1f}",
            f"stream lag: max {self.max_lag} undelivered, max {self.max_pending} pending; "
            f"during the collector outage the stream held {self.outage_stream_length} entries "
            f"(the producer's old MAXLEN ~{self.old_maxlen} would have dropped the excess); "
            f"final drain {self.drain_s:.1f} s",
        ]


async def _make_user(db_url: str, meetings: int) -> str:
    db = Database(db_url, pool_size=1)
    token = generate_token()
    try:
        async with db.engine.begin() as conn:
            user_id = (
                await conn.execute(
                    text("INSERT INTO users (email, max_concurrent_bots) VALUES (:e, :n) RETURNING id"),
                    {"e": f"chaos-{token[:8]}@example.com", "n": meetings},
                )
            ).scalar_one()
            await conn.execute(
                text("INSERT INTO api_tokens (token_hash, token_prefix, user_id) VALUES (:h, :p, :u)"),
                {"h": hash_token(token), "p": token[:6], "u": user_id},
            )
    finally:
        await db.dispose()
    return token


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.stack = ChaosStack(config.work_dir, bot_lifetime_s=3600)
        self.truth = GroundTruth()
        self.report = SoakReport(old_maxlen=config.old_maxlen)
        self.targets: list[MeetingTarget] = []
        self.token = ""
        self.bot_pids: set[int] = set()
        self._probes = 0

    # --- setup ---------------------------------------------------------------------------------

    async def _create_bots(self, client: httpx.AsyncClient) -> None:
        for i in range(self.cfg.meetings):
            native = f"{4000000000 + i}"
            resp = await client.post(
                "/bots", json={"platform": "zoom", "native_meeting_id": native}, headers=self._auth
            )
            resp.raise_for_status()
            self.targets.append(MeetingTarget(resp.json()["id"], "zoom", native, self.token))
        await self._wait_statuses("active", 60)

    @property
    def _auth(self) -> dict[str, str]:
        return {"X-API-Key": self.token}

    async def _statuses(self) -> dict[int, str]:
        db = Database(self.stack.db_url, pool_size=1)
        try:
            async with db.engine.begin() as conn:
                rows = await conn.execute(text("SELECT id, status FROM meetings"))
                return {r[0]: r[1] for r in rows}
        finally:
            await db.dispose()

    async def _wait_statuses(self, status: str, limit_s: float) -> dict[int, str]:
        deadline = time.monotonic() + limit_s
        statuses: dict[int, str] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                statuses = await self._statuses()
                if statuses and all(s == status for s in statuses.values()):
                    break
            await asyncio.sleep(0.3)
        return statuses

    # --- measuring ------------------------------------------------------------------------------

    async def _sample_lag(self, redis: Redis, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                lag = await measure(redis, SEGMENT_STREAM)
                self.report.max_lag = max(self.report.max_lag, lag.lag or 0)
                self.report.max_pending = max(self.report.max_pending, lag.pending)
            await asyncio.sleep(0.25)

    async def _visible(self, meeting: MeetingTarget, uid: str, text_: str) -> bool:
        for proc in list(self.stack.collectors):
            with contextlib.suppress(httpx.HTTPError, ValueError):
                async with httpx.AsyncClient(base_url=proc.base_url, timeout=2) as client:
                    resp = await client.get(
                        f"/transcripts/{meeting.platform}/{meeting.native_id}",
                        params={"meeting_id": meeting.meeting_id},
                        headers=self._auth,
                    )
                    if resp.status_code == 200:
                        return any(
                            s["session_uid"] == uid and s["text"] == text_ for s in resp.json()["segments"]
                        )
        return False

    async def _recovered(
        self, redis: Redis, name: str, probe: tuple[str, str], dead: list[str], t0: float
    ) -> None:
        """Recovery ends when a probe sent at the fault is readable and the dead consumers own nothing."""
        meeting = self.targets[0]
        uid, text_ = probe
        deadline = t0 + RECOVERY_LIMIT_S
        while time.monotonic() < deadline:
            owned = 0
            with contextlib.suppress(Exception):
                for consumer in dead:
                    owned += len(
                        await redis.xpending_range(SEGMENT_STREAM, GROUP, "-", "+", 1, consumername=consumer)
                    )
                if owned == 0 and await self._visible(meeting, uid, text_):
                    self.report.recovery_s[name] = time.monotonic() - t0
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"no recovery from {name} within {RECOVERY_LIMIT_S:.0f} s")

    def _probe(self, publisher: StreamPublisher) -> tuple[str, str]:
        self._probes += 1
        session = Session(
            f"probe-{self._probes}",
            self.targets[0],
            publisher,
            self.truth,
            drafts=0,
            interval_s=0,
            bind_by_id=True,
            seed=self._probes,
        )
        session.start()
        (message,) = session.segment(0)
        session._send(message)
        return session.uid, message.segments[-1].text

    # --- faults ---------------------------------------------------------------------------------

    async def _pause(self) -> None:
        await asyncio.sleep(self.cfg.phase_s * self.rng.uniform(0.5, 1.5))

    async def _kill_one(self, redis: Redis, publisher: StreamPublisher, name: str, *, restart: bool) -> None:
        victim = self.rng.choice(self.stack.collectors)
        t0 = time.monotonic()
        dead = [await self.stack.kill_collector(victim)]
        self.report.collector_kills += 1
        probe = self._probe(publisher)
        if restart:
            await asyncio.sleep(self.rng.uniform(0.2, 1.5))
            await self.stack.start_collector()
        await self._recovered(redis, name, probe, dead, t0)

    async def _faults(self, redis: Redis, publisher: StreamPublisher, backlog: StreamPublisher) -> None:
        cfg, stack = self.cfg, self.stack
        await self._pause()
        await self._kill_one(redis, publisher, "collector SIGKILL", restart=True)

        await stack.start_collector()  # two collectors in one group for a while
        await self._pause()
        await self._kill_one(redis, publisher, "SIGKILL of one of two collectors", restart=False)
        await self._pause()

        t0 = time.monotonic()
        await stack.restart_redis()
        await self._recovered(redis, "Valkey restart", self._probe(publisher), [], t0)
        await self._pause()

        t0 = time.monotonic()
        await stack.kill_manager()
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        await stack.start_manager()
        self.report.recovery_s["bot-manager SIGKILL"] = time.monotonic() - t0
        await self._pause()

        t0 = time.monotonic()
        await stack.restart_postgres()
        await self._recovered(redis, "PostgreSQL restart", self._probe(publisher), [], t0)
        await self._pause()

        # The long outage: no collector while more entries arrive than the old MAXLEN kept.
        t0 = time.monotonic()
        dead = [await stack.kill_collector(p) for p in list(stack.collectors)]
        self.report.collector_kills += len(dead)
        per_segment = cfg.drafts + 1
        bursts = 5
        segments = math.ceil(cfg.old_maxlen * 1.1 / bursts / per_segment) + 1
        for b in range(bursts):
            Session(
                f"backlog-{b}",
                self.targets[b % len(self.targets)],
                backlog,
                self.truth,
                drafts=cfg.drafts,
                interval_s=0,
                bind_by_id=b % 2 == 0,
                seed=1000 + b,
            ).burst(segments)
        await backlog.flush(600)
        probe = self._probe(publisher)
        await publisher.flush(60)
        self.report.outage_stream_length = int(await redis.xlen(SEGMENT_STREAM))
        await stack.start_collector()
        await self._recovered(redis, "collector outage past the old MAXLEN", probe, dead, t0)

        while self.report.collector_kills < cfg.collector_kills:
            await self._pause()
            label = f"collector SIGKILL #{self.report.collector_kills + 1}"
            await self._kill_one(redis, publisher, label, restart=True)
        await self._pause()

    # --- the run --------------------------------------------------------------------------------

    async def run(self) -> SoakReport:
        started = time.monotonic()
        stack = self.stack
        await stack.start_stores()
        try:
            await self._run(started)
        finally:
            await stack.stop()
        self.report.orphans = await self._orphans()
        self.report.duration_s = time.monotonic() - started
        return self.report

    async def _run(self, started: float) -> None:
        cfg, stack = self.cfg, self.stack
        self.token = await _make_user(stack.db_url, cfg.meetings)
        await stack.start_collector()
        manager = await stack.start_manager()
        async with httpx.AsyncClient(base_url=manager.base_url, timeout=30) as client:
            await self._create_bots(client)
        redis = Redis.from_url(stack.redis_url, decode_responses=True, socket_timeout=5)
        publisher = StreamPublisher(stack.redis_url)
        backlog = StreamPublisher(stack.redis_url, max_buffered=cfg.old_maxlen * 3)
        publisher.start()
        backlog.start()
        stop_traffic, stop_sampling = asyncio.Event(), asyncio.Event()
        sessions = [
            Session(
                f"s{i:03d}",
                self.targets[i % len(self.targets)],
                publisher,
                self.truth,
                drafts=cfg.drafts,
                interval_s=cfg.interval_s,
                bind_by_id=i % 2 == 0,
                seed=cfg.seed * 1000 + i,
            )
            for i in range(cfg.sessions)
        ]
        self.report.sessions = len(sessions)
        traffic = [asyncio.create_task(s.run(stop_traffic)) for s in sessions]
        sampler = asyncio.create_task(self._sample_lag(redis, stop_sampling))
        try:
            await self._faults(redis, publisher, backlog)
            await self._remember_bot_pids(redis)
            stop_traffic.set()
            await asyncio.gather(*traffic)
            await publisher.flush(120)
            drain_start = time.monotonic()
            await self._drained(redis)
            self.report.drain_s = time.monotonic() - drain_start
            await self._compare(redis)
            await self._stop_bots()
        finally:
            stop_traffic.set()
            stop_sampling.set()
            for task in [*traffic, sampler]:
                task.cancel()
            await asyncio.gather(*traffic, sampler, return_exceptions=True)
            self.report.publisher_dropped = publisher.dropped + backlog.dropped
            await publisher.close(5)
            await backlog.close(5)
            await redis.aclose()
        self.report.messages = self.truth.messages
        self.report.segments = self.truth.segments

    async def _remember_bot_pids(self, redis: Redis) -> None:
        for target in self.targets:
            pid = await redis.get(f"standin:{target.meeting_id}:pid")
            if pid:
                self.bot_pids.add(int(pid))

    async def _drained(self, redis: Redis) -> None:
        """Until both streams are fully delivered and acknowledged and nothing waits in Redis."""
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                seg, spk = await measure(redis, SEGMENT_STREAM), await measure(redis, SPEAKER_STREAM)
                active = await redis.scard("active_meetings")
                if seg.lag == 0 and seg.pending == 0 and spk.lag == 0 and spk.pending == 0 and active == 0:
                    return
            await asyncio.sleep(0.5)
        raise AssertionError("the pipeline did not drain within 600 s")

    async def _compare(self, redis: Redis) -> None:
        rep = self.report
        proc = self.stack.collectors[0]
        db = Database(self.stack.db_url, pool_size=1)
        try:
            async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as client:
                for target in self.targets:
                    truth = self.truth.final.get(target.meeting_id, {})
                    resp = await client.get(
                        f"/transcripts/zoom/{target.native_id}",
                        params={"meeting_id": target.meeting_id},
                        headers=self._auth,
                    )
                    resp.raise_for_status()
                    seen: dict[tuple[str, float], str] = {}
                    for s in resp.json()["segments"]:
                        key = (s["session_uid"], round(s["start"], 3))
                        rep.duplicated += key in seen
                        seen[key] = s["text"]
                    rep.lost += sum(1 for k in truth if k not in seen)
                    rep.stale += sum(1 for k, v in truth.items() if k in seen and seen[k] != v)
                    rep.unexpected += sum(1 for k in seen if k not in truth)
                    async with db.engine.begin() as conn:
                        rows = await conn.execute(
                            text(
                                "SELECT session_uid, start_time, text FROM transcriptions "
                                + "WHERE meeting_id = :m"
                            ),
                            {"m": target.meeting_id},
                        )
                        stored = {(r[0], round(r[1], 3)): r[2] for r in rows}
                    rep.db_lost += sum(1 for k in truth if k not in stored)
                    rep.db_stale += sum(1 for k, v in truth.items() if k in stored and stored[k] != v)
        finally:
            await db.dispose()
        rep.dead_letters = int(await redis.xlen(SEGMENT_STREAM + ":dead")) + int(
            await redis.xlen(SPEAKER_STREAM + ":dead")
        )

    async def _stop_bots(self) -> None:
        assert self.stack.manager is not None
        async with httpx.AsyncClient(base_url=self.stack.manager.base_url, timeout=30) as client:
            for target in self.targets:
                resp = await client.delete(f"/bots/zoom/{target.native_id}", headers=self._auth)
                if resp.status_code != 202:
                    log.error("stopping bot of %s: %s %s", target.native_id, resp.status_code, resp.text)
        statuses = await self._wait_statuses("completed", 60)
        self.report.wrong_status = sum(1 for s in statuses.values() if s != "completed")

    async def _orphans(self) -> int:
        """Bot processes alive once the stack is down (each was told to leave; the manager stopped)."""
        deadline = time.monotonic() + 15
        alive = set(self.bot_pids)
        while alive and time.monotonic() < deadline:
            alive = {p for p in alive if _alive(p)}
            await asyncio.sleep(0.2)
        return len(alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError, PermissionError):
        return False


async def soak(config: SoakConfig) -> SoakReport:
    return await Soak(config).run()
