"""Encoded JSON transcripts, reused while nothing they are made of has changed.

A 1,000-segment transcript costs the collector ~15 ms of CPU to read and encode,
and clients poll it. The body is kept per (meeting, final or live) together with
the *version* it was made from, and served again only when a fresh read of the
version (one statement, see ``read_queries._WITH_VERSION``) finds it unchanged.

Why the version cannot miss a change: it is the meeting row's ``xmin`` and, for
each of ``transcriptions``, ``meeting_sessions`` and ``final_segments``, the
meeting's row count with the sum and maximum of their ``xmin``. PostgreSQL gives
every row a transaction writes (insert, or the new version an update makes) that
transaction's id, which no existing row of the table carries: an insert or update
raises the sum by a positive amount (or changes the count), a delete lowers the
count, and a redaction or status change rewrites the meeting row. Row locks
(``FOR SHARE``/``FOR UPDATE``) leave ``xmin`` alone, so they do not evict. The
version lives in PostgreSQL, so it holds for every collector replica and for
writers in other services (the bot-manager's status changes).

Only answers with no live drafts in Redis are kept (``GET`` reads Redis first,
then PostgreSQL, so a segment moving from Redis to PostgreSQL is never missed:
the persister commits the row before it deletes the draft). A body stored under
version V was rendered from a state at least as new as V; if anything changed
after V, the next read's version differs, so a stored body is only served when
it equals what a fresh render would give.
"""

from __future__ import annotations

from collections import OrderedDict


class TranscriptCache:
    """Bounded by total bytes, least recently used out first."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[int, bool], tuple[str, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, meeting_id: int, final: bool, version: str) -> bytes | None:
        entry = self._entries.get((meeting_id, final))
        if entry is None or entry[0] != version:
            self.misses += 1
            return None
        self._entries.move_to_end((meeting_id, final))
        self.hits += 1
        return entry[1]

    def put(self, meeting_id: int, final: bool, version: str, body: bytes) -> None:
        if len(body) > self._max_bytes:
            return
        self.discard(meeting_id, final)
        self._entries[(meeting_id, final)] = (version, body)
        self._bytes += len(body)
        while self._bytes > self._max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= len(dropped)

    def discard(self, meeting_id: int, final: bool) -> None:
        old = self._entries.pop((meeting_id, final), None)
        if old is not None:
            self._bytes -= len(old[1])
