"""Reading a Redis stream through a consumer group: handle, acknowledge, dead-letter, reclaim.

The rule is "acknowledge only what was handled":

- a handled message is acknowledged in the same MULTI as its writes, so a crash
  can never leave a write without its ACK being retried, nor an ACK without its write;
- a message that can never succeed (bad JSON, bad shape, bad token, unknown
  meeting) is copied to the dead-letter stream and acknowledged, atomically;
- an infrastructure failure (Redis or PostgreSQL unreachable) leaves the message
  pending: this consumer re-reads its own pending list once things recover, and
  if it dies instead, another consumer takes the message over with XAUTOCLAIM
  after ``PENDING_MSG_TIMEOUT_MS``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import exc as sa_exc

from vexa.streams import DEAD_LETTER_MAXLEN_DEFAULT, redact_tokens

log = logging.getLogger(__name__)

Writes = Callable[[Pipeline], None]
Handler = Callable[[str, dict[str, str]], Awaitable[Writes | None]]


class DeadLetter(Exception):
    """Raised by a handler: this message can never be processed; park it with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# SQLSTATE classes that mean "the server or the connection", not "this data": connection
# exception, transaction rollback (deadlock, serialization), insufficient resources,
# operator intervention (shutdown, starting up), system error.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def is_transient(exc: BaseException) -> bool:
    """Infrastructure trouble worth retrying (as opposed to a message or code problem)."""
    if isinstance(exc, RedisError | ConnectionError | TimeoutError | OSError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError | sa_exc.ProgrammingError):
            return False
        sqlstate = _sqlstate(exc)
        return sqlstate is None or sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate == "55P03"
    return False


def _sqlstate(exc: sa_exc.DBAPIError) -> str | None:
    """The server's error code, when the server answered (asyncpg keeps it on the driver error)."""
    driver = getattr(exc.orig, "driver_exception", None) or exc.orig
    code = getattr(driver, "sqlstate", None)
    return code if isinstance(code, str) else None


def parse_entries(raw: Any) -> list[tuple[str, dict[str, str] | None]]:
    """XREADGROUP/XAUTOCLAIM entries as (id, fields); fields is None for a deleted entry."""
    out: list[tuple[str, dict[str, str] | None]] = []
    for entry in raw or []:
        if entry is None:
            continue
        entry_id, fields = entry[0], entry[1]
        if isinstance(fields, list):  # not parsed into a dict by the client
            fields = dict(zip(fields[::2], fields[1::2], strict=False))
        out.append((str(entry_id), fields or None))
    return out


class StreamWorker:
    """One consumer of one stream in one group."""

    def __init__(
        self,
        redis: Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        dead_stream: str,
        handler: Handler,
        dead_maxlen: int = DEAD_LETTER_MAXLEN_DEFAULT,
        count: int = 10,
        block_ms: int = 2000,
        claim_idle_ms: int = 60_000,
        claim_interval_s: float = 30.0,
        name: str = "stream",
    ) -> None:
        self.redis = redis
        self.stream, self.group, self.consumer, self.dead_stream = stream, group, consumer, dead_stream
        self.handler = handler
        self.dead_maxlen = dead_maxlen
        self.count, self.block_ms = count, block_ms
        self.claim_idle_ms, self.claim_interval_s = claim_idle_ms, claim_interval_s
        self.name = name
        self.handled = 0
        self.dead_lettered = 0
        self.vanished = 0
        self._recheck_own_pending = True  # after a restart under the same name, or an outage

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self.group, self.stream)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Forever: claim stale messages at start and every ``claim_interval_s``; read and handle."""
        backoff = 0.5
        next_claim = 0.0
        while True:
            try:
                if time.monotonic() >= next_claim:
                    await self.claim_stale()
                    next_claim = time.monotonic() + self.claim_interval_s
                await self.read_once()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    log.warning("%s: consumer group %s vanished; recreating", self.name, self.group)
                    await _quietly(self.ensure_group())
                    continue
                level = logging.WARNING if is_transient(exc) else logging.ERROR
                log.log(level, "%s consumer: %s; retrying in %.1fs", self.name, exc, backoff, exc_info=True)
                self._recheck_own_pending = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def read_once(self, block_ms: int | None = None) -> int:
        """Read one batch (our own pending first when needed) and handle it; returns entries seen."""
        if self._recheck_own_pending:
            resp = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: "0"}, count=self.count
            )
            entries = _stream_entries(resp)
            if not entries:
                self._recheck_own_pending = False
                return 0
        else:
            resp = await self.redis.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=self.count,
                block=self.block_ms if block_ms is None else block_ms,
            )
            entries = _stream_entries(resp)
        await self.process(entries)
        return len(entries)

    async def claim_stale(self) -> int:
        """Take over messages another (probably dead) consumer left pending too long, and handle them."""
        cursor = "0-0"
        total = 0
        for _ in range(10_000):  # bounded: the cursor walks the pending list once
            resp = await self.redis.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, start_id=cursor, count=self.count
            )
            # Redis >= 7 answers [cursor, entries, deleted_ids]; 6.2 answers [cursor, entries].
            cursor = str(resp[0]) if resp else "0-0"
            entries = parse_entries(resp[1] if len(resp) > 1 else [])
            if entries:
                log.info(
                    "%s: claimed %d stale message(s) idle > %d ms",
                    self.name,
                    len(entries),
                    self.claim_idle_ms,
                )
                await self.process(entries)
                total += len(entries)
            if cursor in ("0-0", "0"):
                break
        return total

    async def process(self, entries: list[tuple[str, dict[str, str] | None]]) -> None:
        """Handle in order; an infrastructure error stops the batch, leaving the rest pending."""
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending (XDEL by hand: we never trim unacknowledged entries)
                log.error("%s: pending entry %s no longer exists; acknowledging the gap", self.name, entry_id)
                await self.redis.xack(self.stream, self.group, entry_id)
                self.vanished += 1
                continue
            try:
                writes = await self.handler(entry_id, fields)
            except DeadLetter as dead:
                await self.dead_letter(entry_id, fields, dead.reason)
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    self._recheck_own_pending = True
                    raise
                log.exception("%s: unexpected error handling %s; dead-lettering it", self.name, entry_id)
                await self.dead_letter(
                    entry_id, fields, f"processing error: {type(exc).__name__}: {exc}"[:500]
                )
                continue
            async with self.redis.pipeline(transaction=True) as pipe:
                if writes is not None:
                    writes(pipe)
                pipe.xack(self.stream, self.group, entry_id)
                await pipe.execute()
            self.handled += 1

    async def dead_letter(self, entry_id: str, fields: dict[str, str], reason: str) -> None:
        """Keep what the producer sent (tokens redacted) in a capped stream, acknowledge the original."""
        payload = fields.get("payload")
        if payload is None:  # keep whatever the producer sent, so nothing is lost
            payload = json.dumps({k: redact_tokens(v) for k, v in fields.items()})[:100_000]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.dead_stream,
                {"payload": redact_tokens(payload), "reason": reason, "original_id": entry_id},
                maxlen=self.dead_maxlen,
                approximate=True,
            )
            pipe.xack(self.stream, self.group, entry_id)
            await pipe.execute()
        self.dead_lettered += 1
        log.warning("%s: dead-lettered %s to %s: %s", self.name, entry_id, self.dead_stream, reason)


def _stream_entries(resp: Any) -> list[tuple[str, dict[str, str] | None]]:
    """XREADGROUP answers [[stream, entries]] (RESP2) or {stream: [entries]} (RESP3)."""
    if not resp:
        return []
    groups = resp.values() if isinstance(resp, dict) else (entries for _, entries in resp)
    out: list[tuple[str, dict[str, str] | None]] = []
    for entries in groups:
        if (
            entries
            and isinstance(entries[0], list)
            and entries[0]
            and isinstance(entries[0][0], list | tuple)
        ):
            entries = entries[0]  # RESP3 wraps the entries once more
        out += parse_entries(entries)
    return out


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        log.warning("ignored error", exc_info=True)
