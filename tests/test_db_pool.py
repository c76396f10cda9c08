"""The pool pings only connections that sat idle: a database restart is still survived."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from vexa.db import Database
from vexa.db import session as db_session


async def test_a_connection_killed_while_idle_is_replaced_before_use(database_url: str, monkeypatch) -> None:
    monkeypatch.setattr(db_session, "IDLE_PING_S", 0.05)
    db = Database(database_url, pool_size=1)
    try:
        async with db.engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with Database(database_url, pool_size=1).engine.connect() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await admin.commit()
        await asyncio.sleep(0.1)  # idle past the threshold: pinged at checkout, found dead, replaced
        async with db.engine.connect() as conn:
            new_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert new_pid != pid
    finally:
        await db.dispose()
