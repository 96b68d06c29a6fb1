"""The PostgreSQL store: psycopg 3 (async) with a small connection pool, for several replicas.

Behaviour is the shared SQL in `sql.py`; this module only connects, translates `?` to
psycopg's `%s`, and migrates. Migrations run under a transaction-scoped advisory lock,
so replicas starting at the same moment apply each one exactly once.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bot.store.schema import Dialect, migrations
from bot.store.sql import Row, SQLStore

__all__ = ["MIGRATION_LOCK", "PostgresStore"]

MIGRATION_LOCK = 0x4661_6272_6F00_0001  # "Fabro" + 1: the advisory lock key for migrations

MIGRATIONS: list[str] = migrations(Dialect.POSTGRES)  # this dialect's steps, as shipped


class PostgresStore(SQLStore):
    def __init__(self, url: str, *, max_connections: int = 10, open_timeout: float = 10.0) -> None:
        self.url = url
        self.open_timeout = open_timeout
        self._pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=10,
            kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 5},
        )

    async def open(self) -> None:
        await self._pool.open(wait=True, timeout=self.open_timeout)
        async with self._pool.connection() as conn:
            await _migrate(conn)

    async def close(self) -> None:
        await self._pool.close()

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        self.statements += 1
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_placeholders(sql), params)
            return cursor.rowcount

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        self.statements += 1
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_placeholders(sql), params)
            return [dict(row) for row in await cursor.fetchall()]


def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")


async def _migrate(conn: psycopg.AsyncConnection[Any]) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        cursor = await conn.execute("SELECT version FROM schema_version")
        row = await cursor.fetchone()
        version = row["version"] if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(str.strip, script.split(";")):
                await conn.execute(statement)
            await conn.execute("DELETE FROM schema_version")
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
