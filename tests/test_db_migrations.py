"""The migrations build exactly the schema the models describe (an index added to one but not
the other would otherwise pass every test: the tests' database is built by the migrations)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from vexa.db import Database
from vexa.db.models import Base


async def test_the_migrated_database_matches_the_models(database_url: str) -> None:
    db = Database(database_url, pool_size=1)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await db.dispose()
    assert diff == []


async def test_a_session_is_found_by_its_uid_through_an_index(database_url: str) -> None:
    """The collector's lookup by session uid alone (vexa.collector.meetings) must not scan."""
    db = Database(database_url, pool_size=1)
    try:
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(
                row[0]
                for row in await conn.exec_driver_sql(
                    "EXPLAIN SELECT meeting_id FROM meeting_sessions WHERE session_uid = 'x'"
                )
            )
    finally:
        await db.dispose()
    assert "ix_meeting_sessions_session_uid" in plan, plan
