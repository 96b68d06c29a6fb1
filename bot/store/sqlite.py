"""The SQLite store: one file, WAL mode, every call run off the event loop."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bot.store.schema import Dialect, migrations
from bot.store.sql import Row, SQLStore

__all__ = ["SQLiteStore", "StoreGone"]

log = logging.getLogger(__name__)


class StoreGone(RuntimeError):
    """The SQLite file the bot opened is no longer at its path."""


T = TypeVar("T")

MIGRATIONS: list[str] = migrations(Dialect.SQLITE)  # this dialect's steps, as shipped


class SQLiteStore(SQLStore):
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        # One thread owns the connection: statements run one at a time, in order, off the loop.
        self._thread: ThreadPoolExecutor | None = None
        self._identity: tuple[int, int] | None = None
        self._gone_reported = False

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            # Remember which file this is: if it is deleted or replaced, writes must stop.
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a claim is on disk before the post it guards, even if the machine dies.
            db.execute("PRAGMA synchronous=FULL")
            _migrate(db)
            self._identity = self._file_identity()
            # Kept even when the opener was cancelled meanwhile (a stop during startup): close() closes it.
            self._db = db
            return db

        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        await self._run(connect)

    async def close(self) -> None:
        if self._thread is None:
            return
        if self._db is None:  # never opened (the opening failed): only the thread to let go
            self._thread.shutdown(wait=False)
            self._thread = None
            return
        db, self._db = self._db, None
        await self._run(db.close)  # after any statement still in flight: never under its feet
        self._thread.shutdown(wait=False)
        self._thread = None

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        db = self._connection()
        self.statements += 1
        return await self._run(lambda: db.execute(sql, params).rowcount)

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        db = self._connection()
        self.statements += 1
        rows = await self._run(lambda: db.execute(sql, params).fetchall())
        return [dict(r) for r in rows]

    async def _run(self, call: Callable[[], T]) -> T:
        """Run `call` in the connection's thread and wait for it, even if the caller is cancelled.

        A cancelled caller cannot stop a statement already running in the thread; letting
        go of the lock early would let `close()` free the connection under it (a crash).
        So the statement is waited for, and the cancellation delivered afterwards.
        """
        assert self._thread is not None, "the store is not open"
        async with self._lock:
            future = asyncio.get_running_loop().run_in_executor(self._thread, call)
            cancelled = False
            failed: BaseException | None = None
            while True:
                try:
                    result = await asyncio.shield(future)
                    break
                except asyncio.CancelledError:
                    if future.cancelled():
                        raise
                    cancelled = True  # delivered once the statement is done, even if it just finished
                    if future.done():
                        break
                except BaseException as exc:  # the statement failed, perhaps after the cancellation came
                    if not cancelled:
                        raise
                    failed = exc
                    break
            if cancelled:
                # The cancellation wins over however the statement ended: were its error raised
                # instead, a caller's `except Exception` would take it and the cancellation be lost.
                raise asyncio.CancelledError from failed
            return result

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        if self._identity is not None and self._file_identity() != self._identity:
            if not self._gone_reported:
                self._gone_reported = True
                log.error(
                    "the database file %s was deleted or replaced while the bot ran; refusing to write into a"
                    " deleted file. Restore it and restart the bot",
                    self.path,
                )
            raise StoreGone(f"the database file {self.path} is gone")
        return self._db

    def _file_identity(self) -> tuple[int, int] | None:
        if self.path == ":memory:":
            return None
        try:
            stat = Path(self.path).stat()
        except FileNotFoundError:
            return (-1, -1)
        return (stat.st_dev, stat.st_ino)


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
