"""Leadership on PostgreSQL: a session-level advisory lock held on a connection of its own.

If the leader dies, PostgreSQL drops its connection and the lock with it; if the leader
loses the database, its health check fails and it steps down. See `bot.leader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from bot.leader import announce, cancel

__all__ = ["PostgresLeadership"]

log = logging.getLogger(__name__)


class PostgresLeadership:
    def __init__(self, url: str, *, check_every: float = 2.0, on_change: Callable[[bool], Any] | None = None) -> None:
        self.url = url
        self.check_every = check_every
        self.on_change = on_change
        self._leader = False
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._key: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.backend_pid: int | None = None  # the server process holding our lock, for operators
        self.rounds = 0  # campaign rounds so far: each one asked (or confirmed) the lock

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def start(self) -> None:
        self._task = asyncio.create_task(self._campaign(), name="leader-election")

    async def stop(self) -> None:
        await cancel(self._task)
        await self._drop_connection()
        self._set(False)

    async def _campaign(self) -> None:
        while True:
            self.rounds += 1
            try:
                if self._conn is None or self._conn.closed:
                    await self._connect()
                assert self._conn is not None
                if self._leader:
                    await self._conn.execute("SELECT 1")  # still connected, so still holding the lock
                else:
                    cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s) AS won", (self._key,))
                    row = await cursor.fetchone()
                    self._set(bool(row and row[0]))
            except (psycopg.Error, OSError) as exc:
                if self._leader:
                    log.error(
                        "lost the database connection that holds alert leadership (%s); stepping down",
                        type(exc).__name__,
                    )
                self._set(False)
                await self._drop_connection()
            await asyncio.sleep(self.check_every)

    async def _connect(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5)
        self.backend_pid = self._conn.info.backend_pid
        cursor = await self._conn.execute("SELECT current_database(), current_schema()")
        database, schema = await cursor.fetchone() or ("", "")
        # One lock per database and schema, so separate deployments sharing a server do not contend.
        digest = hashlib.sha256(f"fabro-slack-bot:leader:{database}:{schema}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    def _set(self, leader: bool) -> None:
        if leader != self._leader:
            self._leader = leader
            announce(leader, self.on_change)
