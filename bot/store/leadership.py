"""Which replica runs the alert scheduler: exactly one at a time.

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own.
If the leader dies, PostgreSQL drops its connection and the lock with it; if the leader
loses the database, its health check fails and it steps down. The others try for the
lock every few seconds, so one of them takes over well within two poll intervals.
Alert claims are unique in the database regardless, so even two leaders at once (a
network split) never post an alert twice; leadership only saves the duplicate work.

On SQLite the database is one file on one machine: the leader holds an exclusive lock on
a file beside it (`<database>.lock`), which the operating system releases when the
process ends, however it ends. So a second process on the same file (a rolling deploy
sharing a volume) waits instead of alerting twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

import psycopg

from bot.core.tasks import stop_task

__all__ = ["FileLeadership", "Leadership", "PostgresLeadership", "SoleLeader", "announce", "leadership_for"]

log = logging.getLogger(__name__)


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class SoleLeader:
    """A single process on an embedded database always leads."""

    is_leader = True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class FileLeadership:
    """Leadership as an exclusive `flock` on a file: one holder per machine and file."""

    def __init__(self, path: str, *, check_every: float = 2.0, on_change: Callable[[bool], Any] | None = None) -> None:
        self.path = path
        self.check_every = check_every
        self.on_change = on_change
        self._fd: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._fd is not None

    async def start(self) -> None:
        if not self._try():
            log.info("another process holds %s; this one stands by for the alert scheduler", self.path)
            self._task = asyncio.create_task(self._wait(), name="leader-election")

    async def stop(self) -> None:
        await stop_task(self._task)
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing releases the lock
            announce(False, self.on_change)

    async def _wait(self) -> None:
        # flock has no async wait: try again every few seconds until the holder goes away.
        while not self._try():  # noqa: ASYNC110
            await asyncio.sleep(self.check_every)

    def _try(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        announce(True, self.on_change)
        return True


def announce(leader: bool, on_change: Callable[[bool], Any] | None) -> None:
    log.info("this replica %s the alert scheduler leader", "is now" if leader else "is no longer")
    if on_change is not None:
        on_change(leader)


def leadership_for(
    database_url: str, *, check_every: float, on_change: Callable[[bool], Any] | None = None
) -> Leadership:
    if database_url.startswith(("postgresql://", "postgres://")):
        return PostgresLeadership(database_url, check_every=check_every, on_change=on_change)
    path = database_url.removeprefix("sqlite:///")
    if path == ":memory:":
        return SoleLeader()
    return FileLeadership(path + ".lock", check_every=check_every, on_change=on_change)


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
        await stop_task(self._task)
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
