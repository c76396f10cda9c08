"""The ``transcriptions`` upsert: many meetings' settled segments in one fenced transaction.

One statement per chunk of rows, whatever their number: the rows travel as eleven
arrays (``unnest``), so the SQL text never changes (one prepared statement, no
per-row bind parameters to build or compile). ``ON CONFLICT ... WHERE version <=
excluded.version`` keeps the reliability rule: a replay changes nothing and an
older draft never replaces a newer row. Pieces of a split mixed-stream segment
(``split_from``) are replaced as a set: a revision's split deletes the earlier
split's other pieces, and an older split's pieces are not inserted beside a newer one.

The upsert runs on the session's own asyncpg connection, inside its transaction:
asyncpg's records cost a fraction of SQLAlchemy's result rows, and the RETURNING
rows number as many as the segments.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import bindparam, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from vexa.collector.segments import StoredSegment
from vexa.streams import entry_version

ROWS_PER_STATEMENT = 5000  # bounds one statement's arrays (memory), not its parameter count

_ALIVE = text(
    "SELECT id FROM meetings WHERE id IN :ids AND (data -> 'redacted') IS DISTINCT FROM 'true'::jsonb "
    "ORDER BY id FOR SHARE"
).bindparams(bindparam("ids", expanding=True))

# A piece of a split segment (split_from set) is not inserted when a newer split of the
# same segment is already stored: an older revision's pieces never come back beside it.
_UPSERT = """
INSERT INTO transcriptions AS t
    (meeting_id, session_uid, start_time, end_time, text, speaker, speaker_mapping_status,
     speaker_confidence, language, version, split_from)
SELECT * FROM unnest(
    $1::integer[], $2::varchar[], $3::float8[], $4::float8[], $5::text[], $6::varchar[],
    $7::varchar[], $8::float8[], $9::varchar[], $10::bigint[], $11::float8[])
    AS n(meeting_id, session_uid, start_time, end_time, text, speaker, status, confidence,
         language, version, split_from)
WHERE n.split_from IS NULL OR NOT EXISTS (
    SELECT 1 FROM transcriptions o
    WHERE o.meeting_id = n.meeting_id AND o.session_uid = n.session_uid
      AND o.split_from = n.split_from AND o.version > n.version)
ON CONFLICT ON CONSTRAINT uq_transcriptions_segment DO UPDATE SET
    end_time = excluded.end_time, text = excluded.text, speaker = excluded.speaker,
    speaker_mapping_status = excluded.speaker_mapping_status,
    speaker_confidence = excluded.speaker_confidence, language = excluded.language,
    version = excluded.version, split_from = excluded.split_from
WHERE t.version <= excluded.version
RETURNING meeting_id, session_uid, start_time
"""

# A revision of a split segment is split again, maybe elsewhere: the rows of the segment's
# earlier splits (same split_from, not newer) that this split does not have are deleted,
# in the same transaction as the upsert that writes this split's pieces.
_DROP_STALE_PIECES = text(
    """
DELETE FROM transcriptions AS t
USING (
    SELECT m, u, sf, max(v) AS v, array_agg(st) AS starts
    FROM unnest(CAST(:meeting_id AS integer[]), CAST(:session_uid AS varchar[]),
                CAST(:split_from AS float8[]), CAST(:version AS bigint[]), CAST(:start_time AS float8[]))
         AS n(m, u, sf, v, st)
    WHERE sf IS NOT NULL
    GROUP BY m, u, sf
) AS s
WHERE t.meeting_id = s.m AND t.session_uid = s.u AND t.split_from = s.sf
  AND t.version <= s.v AND NOT (t.start_time = ANY (s.starts))
"""
)


async def _fetch(driver: asyncpg.Connection, *args: list[object]) -> list[asyncpg.Record]:
    """The upsert, its errors raised as SQLAlchemy's ``DBAPIError`` (with the server's SQLSTATE
    on ``orig``), like every other statement of the transaction: the persister tells a refused
    row from an outage by them."""
    try:
        return await driver.fetch(_UPSERT, *args)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise sa_exc.DBAPIError(_UPSERT, None, exc) from exc  # type: ignore[arg-type]


async def lock_alive(session: AsyncSession, meeting_ids: list[int]) -> set[int]:
    """Take the meetings' rows FOR SHARE (``DELETE /meetings`` takes FOR UPDATE, so the two
    serialise) and return those neither deleted nor redacted."""
    rows = await session.execute(_ALIVE, {"ids": sorted(meeting_ids)})
    return {meeting_id for (meeting_id,) in rows}


async def upsert(
    session: AsyncSession, segments: dict[int, list[StoredSegment]]
) -> set[tuple[int, str, float]]:
    """Upsert every meeting's segments; returns (meeting id, session uid, start) of the rows changed."""
    flat = [(meeting_id, s) for meeting_id, segs in segments.items() for s in segs]
    changed: set[tuple[int, str, float]] = set()
    if not flat:
        return changed
    pieces = [(m, s) for m, s in flat if s.split_from is not None]
    if pieces:  # over all rows at once: one segment's pieces may straddle two chunks below
        await session.execute(
            _DROP_STALE_PIECES,
            {
                "meeting_id": [m for m, _ in pieces],
                "session_uid": [s.session_uid for _, s in pieces],
                "split_from": [s.split_from for _, s in pieces],
                "version": [entry_version(s.version) for _, s in pieces],
                "start_time": [s.start for _, s in pieces],
            },
        )
    conn = await session.connection()  # the transaction is open: lock_alive ran in it
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    for i in range(0, len(flat), ROWS_PER_STATEMENT):
        chunk = flat[i : i + ROWS_PER_STATEMENT]
        rows = await _fetch(
            driver,
            [m for m, _ in chunk],
            [s.session_uid for _, s in chunk],
            [s.start for _, s in chunk],
            [s.end_time for _, s in chunk],
            [s.text for _, s in chunk],
            [s.speaker for _, s in chunk],
            [s.speaker_mapping_status for _, s in chunk],
            [s.speaker_confidence for _, s in chunk],
            [s.language for _, s in chunk],
            [entry_version(s.version) for _, s in chunk],
            [s.split_from for _, s in chunk],
        )
        changed.update((r[0], r[1], r[2]) for r in rows)
    return changed
