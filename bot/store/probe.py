"""A look at a database that changes nothing: reachable, and at which schema version, for `check`."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["StoreProbe", "probe_store"]

State = Literal["absent", "current", "behind", "ahead", "unreachable"]


@dataclass(frozen=True)
class StoreProbe:
    """What `check` can say about the database. `reason` is a sentence for `unreachable`."""

    state: State
    version: int = 0
    latest: int = 0
    reason: str = ""


async def probe_store(database_url: str, *, timeout: float = 3.0) -> StoreProbe:
    """Reads the schema version without creating a file, a table or a migration."""
    if database_url.startswith("sqlite:///"):
        return await asyncio.to_thread(_probe_sqlite, database_url.removeprefix("sqlite:///"))
    return await _probe_postgres(database_url, timeout)


def _compare(version: int, latest: int) -> StoreProbe:
    state: State = "current" if version == latest else "behind" if version < latest else "ahead"
    return StoreProbe(state, version, latest)


def _probe_sqlite(path: str) -> StoreProbe:
    from bot.store.sqlite import MIGRATIONS

    if path == ":memory:" or not Path(path).exists():
        return StoreProbe("absent", latest=len(MIGRATIONS))
    try:
        # Read-only by URI: opening must not create the file, a journal or a table. Without a
        # write-ahead log beside it (no bot has it open), `immutable` also keeps SQLite from
        # creating the -wal and -shm files a read-only WAL reader would otherwise leave behind.
        mode = "ro" if Path(f"{path}-wal").exists() else "ro&immutable=1"
        db = sqlite3.connect(f"file:{Path(path).resolve()}?mode={mode}", uri=True, timeout=3)
        try:
            row = db.execute(
                "SELECT version FROM schema_version WHERE EXISTS "
                "(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')"
            ).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            row = None
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return StoreProbe("unreachable", reason=_sqlite_reason(exc))
    return _compare(int(row[0]) if row else 0, len(MIGRATIONS))


def _sqlite_reason(exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "not a database" in text:
        return "the file is not a SQLite database"
    if "locked" in text:
        return "the file is locked by another process"
    if "unable to open" in text:
        return "the file cannot be opened (check its permissions)"
    return "the file cannot be read as a SQLite database"


async def _probe_postgres(url: str, timeout: float) -> StoreProbe:
    import psycopg

    from bot.store.postgres import MIGRATIONS

    try:
        async with asyncio.timeout(timeout):
            conn = await psycopg.AsyncConnection.connect(url, connect_timeout=max(2, int(timeout)), autocommit=True)
            try:
                # A read-only transaction: even a mistake here could not change anything.
                async with conn.transaction():
                    await conn.execute("SET TRANSACTION READ ONLY")
                    cursor = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
                    exists = await cursor.fetchone()
                    version = 0
                    if exists and exists[0]:
                        cursor = await conn.execute("SELECT version FROM schema_version")
                        row = await cursor.fetchone()
                        version = int(row[0]) if row else 0
            finally:
                await conn.close()
    except TimeoutError:
        return StoreProbe("unreachable", reason=f"did not answer in {timeout:g} s")
    except psycopg.Error as exc:
        return StoreProbe("unreachable", reason=_postgres_reason(exc))
    return _compare(version, len(MIGRATIONS))


def _postgres_reason(exc: Exception) -> str:
    """A sentence for what went wrong, never the driver's text (it can quote the host and user)."""
    text = str(exc).lower()
    for needle, sentence in (
        ("password authentication failed", "refuses the user name or password"),
        ("no password supplied", "asks for a password and DATABASE_URL has none"),
        ("does not exist", "has no such database or user"),
        ("could not translate host name", "has a host name that cannot be found (DNS)"),
        ("name or service not known", "has a host name that cannot be found (DNS)"),
        ("connection refused", "refused the connection: is PostgreSQL running there, on that port?"),
        ("timeout expired", "did not answer in time"),
        ("no pg_hba.conf entry", "does not accept connections from this host (pg_hba.conf)"),
        ("ssl", "failed to set up SSL (check sslmode in DATABASE_URL)"),
        ("permission denied", "lets the user connect but not read the bot's tables"),
    ):
        if needle in text:
            return sentence
    return "could not be reached"
