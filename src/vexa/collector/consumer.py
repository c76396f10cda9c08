"""Reading a Redis stream through a consumer group: handle, acknowledge, dead-letter, reclaim.

The rule is "acknowledge only what was handled", applied a batch at a time:

- one XREADGROUP reads up to ``count`` entries; the handler turns each into Redis
  writes (its per-batch lookups, e.g. speaker events, done once for the batch);
- the writes of every handled entry, the dead letters and ONE XACK of all their
  ids go to Redis in one MULTI, so a crash can never leave a write without its
  ACK being retried, nor an ACK without its write. Writes are newer-only (the
  entry id is the version), so a batch replayed after a crash changes nothing;
- a message that can never succeed (bad JSON, bad shape, bad token, unknown
  meeting) is copied to the dead-letter stream in that same MULTI and
  acknowledged with the rest: one bad entry never sinks its batch;
- an infrastructure failure (Redis or PostgreSQL unreachable) commits the entries
  before it and leaves it and the rest of the batch pending: this consumer re-reads
  its own pending list once things recover, and if it dies instead, another
  consumer takes the messages over with XAUTOCLAIM after ``PENDING_MSG_TIMEOUT_MS``.

``run`` overlaps the two halves of the work: while Redis executes one batch's MULTI (the
Lua script is Redis's CPU, on another core), the next batch is read and handled here; its
MULTI is sent only once the previous one has answered, so batches still commit in stream
order, one at a time. If a commit fails, the batch handled meanwhile is not committed
either: both stay pending and are read again.

Redis runs one command at a time, so a read sent after a MULTI waits for it: the next batch
is therefore read *ahead* -- its XREADGROUP sent when a full batch starts being handled, its
lookups (``Handler.prepare``) sent before that batch's MULTI -- and handling it never waits
for the MULTI before. A batch read ahead is only delivered, not acknowledged: whatever
stops it from being handled (a failure, a stale-claim round) leaves it in this consumer's
pending list, which is then read again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import exc as sa_exc

from vexa.streams import DEAD_LETTER_MAXLEN_DEFAULT, redact_tokens
from vexa.tasks import raise_if_cancelled

log = logging.getLogger(__name__)

Entries = list[tuple[str, dict[str, str] | None]]


class Handler(Protocol):
    """Turns stream entries into writes; raises DeadLetter for an entry that can never succeed.

    ``__call__`` returns what to write for one entry (or None) without writing it;
    ``commit`` queues a batch's writes, in stream order, into the batch's MULTI, so
    they can be merged into few commands (the segment writes are one Lua call).
    """

    async def prepare(self, entries: Entries) -> None:
        """Lookups shared by a batch, done once before its entries are handled (may do nothing)."""
        ...

    async def __call__(self, entry_id: str, fields: dict[str, str]) -> Any: ...

    def commit(self, pipe: Pipeline, writes: list[Any]) -> None: ...


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
        self._inflight: asyncio.Task[None] | None = None  # the previous batch's MULTI (``overlap``)
        self._ahead: asyncio.Task[Entries] | None = None  # the next batch's XREADGROUP (``overlap``)
        self._ready: Entries | None = None  # ...read, and prepared

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
            raise_if_cancelled()
            try:
                if time.monotonic() >= next_claim:
                    await self.settle()
                    await self.claim_stale()
                    next_claim = time.monotonic() + self.claim_interval_s
                await self.read_once(overlap=True)
                backoff = 0.5
            except asyncio.CancelledError:
                self._drop_inflight()  # a MULTI is all or nothing: its entries stay pending
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

    async def read_once(self, block_ms: int | None = None, *, overlap: bool = False) -> int:
        """Read one batch (our own pending first when needed) and handle it; returns entries seen.

        With ``overlap`` the batch's MULTI may still be running on return (``flush`` waits
        for it); without, it has been committed.
        """
        prepared = False
        if self._recheck_own_pending:
            await self.settle()  # our pending list includes the batches in flight: let them finish
            resp = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: "0"}, count=self.count
            )
            entries = _stream_entries(resp)
            if not entries:
                self._recheck_own_pending = False
                return 0
        elif self._ready is not None:
            entries, self._ready, prepared = self._ready, None, True
        else:
            entries = await self._read_new(self.block_ms if block_ms is None else block_ms)
        await self.process(entries, overlap=overlap, prepared=prepared)
        return len(entries)

    async def _read_new(self, block_ms: int | None) -> Entries:
        resp = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.count, block=block_ms
        )
        return _stream_entries(resp)

    async def flush(self) -> None:
        """Wait for the MULTI still in flight, if any; its failure is raised here."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def settle(self) -> None:
        """``flush``, and give up the batch read ahead: it stays in our pending list, read next."""
        if await self._drop_ahead():
            self._recheck_own_pending = True
        await self.flush()

    async def _drop_ahead(self) -> bool:
        """Forget the batch read ahead (waiting for its read to finish); True if there was one."""
        task, had = self._ahead, self._ahead is not None or self._ready is not None
        self._ahead = self._ready = None
        if task is not None:
            # Awaited, not cancelled: a read cut off halfway could deliver after our pending list
            # was re-read, and would then wait for XAUTOCLAIM.
            await asyncio.gather(task, return_exceptions=True)
        return had

    def _drop_inflight(self) -> None:
        for task in (self._inflight, self._ahead):
            if task is not None:
                task.cancel()
        self._inflight = self._ahead = self._ready = None

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

    async def process(self, entries: Entries, *, overlap: bool = False, prepared: bool = False) -> None:
        """Handle in order and commit the batch in one MULTI; an infrastructure error commits
        the entries before it and leaves it and the rest pending.

        ``overlap``: send the MULTI and return without waiting for its answer (the previous
        batch's is awaited first, so commits stay in order); after a full batch, the next one
        is read ahead. ``prepared``: the handler's ``prepare`` of these entries is done.
        """
        batch = _Batch()
        try:
            if not prepared:
                await self.handler.prepare([e for e in entries if e[1] is not None])
            if overlap and len(entries) >= self.count and not self._recheck_own_pending:
                self._ahead = asyncio.create_task(self._read_new(None), name=f"{self.name}-read-ahead")
                await asyncio.sleep(0)  # the task sends its XREADGROUP now, not when handling ends
            for entry_id, fields in entries:
                if fields is None:  # deleted while pending (XDEL by hand: we never trim unacked entries)
                    log.error(
                        "%s: pending entry %s no longer exists; acknowledging the gap", self.name, entry_id
                    )
                    batch.ack_ids.append(entry_id)
                    batch.vanished += 1
                    continue
                try:
                    writes = await self.handler(entry_id, fields)
                except DeadLetter as dead:
                    batch.dead_letter(entry_id, fields, dead.reason)
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if is_transient(exc):
                        self._recheck_own_pending = True
                        raise
                    log.exception("%s: unexpected error handling %s; dead-lettering it", self.name, entry_id)
                    batch.dead_letter(
                        entry_id, fields, f"processing error: {type(exc).__name__}: {exc}"[:500]
                    )
                    continue
                batch.handled(entry_id, writes)
        except asyncio.CancelledError:
            self._recheck_own_pending = True  # nothing committed: the whole batch is read again
            raise
        except Exception:
            if await self._drop_ahead():
                self._recheck_own_pending = True  # the batch read ahead is read again
            await self._after_previous()
            await self._commit(batch)  # what was handled before the failure
            raise
        if self._ahead is not None:
            await self._stage_ahead()
        await self._after_previous()
        if overlap and batch.ack_ids:
            # Queued now (not when the task first runs), so the MULTI holds exactly this batch.
            pipe = self._queue(batch)
            self._inflight = asyncio.create_task(self._commit(batch, pipe), name=f"{self.name}-commit")
        else:
            await self._commit(batch)

    async def _stage_ahead(self) -> None:
        """Take the batch read ahead and ``prepare`` it, both before this batch's MULTI is sent:
        behind it on Redis they would wait for it, and so would the handling of that batch."""
        task, self._ahead = self._ahead, None
        assert task is not None
        try:
            entries = await task
            if entries:
                await self.handler.prepare([e for e in entries if e[1] is not None])
                self._ready = entries
        except Exception as exc:  # what the read delivered waits in our pending list
            if not is_transient(exc):
                raise
            log.warning("%s: reading ahead failed: %s", self.name, exc)
            self._recheck_own_pending = True

    async def _after_previous(self) -> None:
        """Wait for the previous batch's MULTI; if it failed, leave this batch pending too."""
        try:
            await self.flush()
        except BaseException:
            self._recheck_own_pending = True  # both batches are read again from our pending list
            raise

    def _queue(self, batch: _Batch) -> Pipeline:
        """The batch's writes, dead letters and one XACK of all its ids, as one MULTI (not sent)."""
        pipe = self.redis.pipeline(transaction=True)
        self.handler.commit(pipe, batch.writes)
        for entry_id, payload, reason in batch.dead:
            pipe.xadd(
                self.dead_stream,
                {"payload": payload, "reason": reason, "original_id": entry_id},
                maxlen=self.dead_maxlen,
                approximate=True,
            )
        pipe.xack(self.stream, self.group, *batch.ack_ids)
        return pipe

    async def _commit(self, batch: _Batch, pipe: Pipeline | None = None) -> None:
        """Send the batch's MULTI (``_queue``) and count what it settled."""
        if not batch.ack_ids:
            return
        async with pipe or self._queue(batch) as multi:
            await multi.execute()
        self.handled += batch.count
        self.vanished += batch.vanished
        self.dead_lettered += len(batch.dead)
        for entry_id, _, reason in batch.dead:
            log.warning("%s: dead-lettered %s to %s: %s", self.name, entry_id, self.dead_stream, reason)


@dataclass
class _Batch:
    """What one batch will commit: writes, dead letters and the ids to acknowledge, in stream order."""

    writes: list[Any] = field(default_factory=list)
    dead: list[tuple[str, str, str]] = field(default_factory=list)  # (entry id, payload, reason)
    ack_ids: list[str] = field(default_factory=list)
    count: int = 0
    vanished: int = 0

    def handled(self, entry_id: str, writes: Any) -> None:
        if writes is not None:
            self.writes.append(writes)
        self.ack_ids.append(entry_id)
        self.count += 1

    def dead_letter(self, entry_id: str, fields: dict[str, str], reason: str) -> None:
        """Keep what the producer sent (tokens redacted); the dead-letter stream is capped."""
        payload = fields.get("payload")
        if payload is None:  # keep whatever the producer sent, so nothing is lost
            payload = json.dumps({k: redact_tokens(v) for k, v in fields.items()})[:100_000]
        self.dead.append((entry_id, redact_tokens(payload), reason))
        self.ack_ids.append(entry_id)


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
