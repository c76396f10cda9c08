"""The ``transcriptions`` upsert: many meetings' settled segments in one fenced transaction.

One statement per chunk of rows, whatever their number: the rows travel as ten
arrays (``unnest``), so the SQL text never changes (one prepared statement, no
per-row bind parameters to build or compile). ``ON CONFLICT ... WHERE version <=
excluded.version`` keeps the reliability rule: a replay changes nothing and an
older draft never replaces a newer row.

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

_UPSERT = """
INSERT INTO transcriptions AS t
    (meeting_id, session_uid, start_time, end_time, text, speaker, speaker_mapping_status,
     speaker_confidence, language, version)
SELECT * FROM unnest(
    $1::integer[], $2::varchar[], $3::float8[], $4::float8[], $5::text[], $6::varchar[],
    $7::varchar[], $8::float8[], $9::varchar[], $10::bigint[])
ON CONFLICT ON CONSTRAINT uq_transcriptions_segment DO UPDATE SET
    end_time = excluded.end_time, text = excluded.text, speaker = excluded.speaker,
    speaker_mapping_status = excluded.speaker_mapping_status,
    speaker_confidence = excluded.speaker_confidence, language = excluded.language,
    version = excluded.version
WHERE t.version <= excluded.version
RETURNING meeting_id, session_uid, start_time
"""


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
        )
        changed.update((r[0], r[1], r[2]) for r in rows)
    return changed
