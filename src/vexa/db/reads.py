"""A plain asyncpg pool for the read routes clients poll (``GET /meetings``, ``GET /transcripts``).

Why beside the SQLAlchemy engine: profiled under 50 concurrent clients, a
``GET /meetings`` spent most of the collector's CPU in the ORM (building
``Meeting`` objects, compiling the statement, the session and pool wrappers),
not in PostgreSQL. These routes read a few fixed statements, so they go
straight to asyncpg: prepared once per connection, rows as tuples. Writes and
everything else keep using ``vexa.db.Database``.

The pool never resets a connection with ``RESET ALL`` on release (asyncpg's
default, one round trip per request): only plain SELECTs run on it, outside
any transaction, so there is no session state to reset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url


async def _no_reset(_: asyncpg.Connection) -> None:
    """Nothing to undo: the pool serves autocommit SELECTs only (see the module docstring)."""


async def _setup(connection: asyncpg.Connection) -> None:
    # jsonb as dicts, decoded like SQLAlchemy decodes them (json.loads, key order kept).
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def asyncpg_dsn(url: str) -> str:
    """asyncpg's DSN from our SQLAlchemy URL (``postgresql+asyncpg://…``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class ReadPool:
    """Opened for a service's lifespan (``async with``); each ``fetch*`` takes a connection per statement."""

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self._dsn = asyncpg_dsn(url)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._max_size, init=_setup, reset=_no_reset
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> ReadPool:
        await self.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:  # pragma: no cover - a wiring error
            raise RuntimeError("ReadPool used before open()")
        return self._pool

    async def fetch(self, sql: str, *args: Any) -> Sequence[asyncpg.Record]:
        return await self.pool.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self.pool.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.pool.fetchval(sql, *args)
