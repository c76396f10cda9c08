"""One async engine per process, handed to request handlers as sessions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

# A connection back in the pool for longer than this is pinged before reuse; one in steady use
# is not (the ping was a round trip per request, ~13% of a GET /meetings in the profile).
IDLE_PING_S = 1.0


class Database:
    """Owns the engine so a service can open it at startup and dispose it at shutdown."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, echo=echo
        )
        _ping_when_idle(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Plain reads (one SELECT or a few independent ones) need no transaction: in autocommit mode
        # asyncpg sends no BEGIN and no ROLLBACK around them. Same pool; the mode is a client-side
        # flag, reset when the connection goes back. (The pool's pre-ping at checkout still runs in
        # its own BEGIN/ROLLBACK; a separate always-autocommit pool would save that too, at the
        # price of twice the connections: measured here, no clear gain in the services' CPU.)
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """For reads only: each statement runs on its own, outside any transaction."""
        async with self.read_sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Pre-ping, but only connections idle for ``IDLE_PING_S``: a database restart is still
    noticed before a request uses a connection that sat through it, and a raised
    DisconnectionError makes the pool replace the connection (up to three tries)."""

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
            return  # new, or in steady use
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection is dead: {type(error).__name__}") from error
