"""The store under test, once on a SQLite file and once on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bot.store import Store, open_store
from bot.store.schema import Dialect, migrations


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = open_store(database_url)
    await s.open()
    yield s
    await s.close()


def step_adding(backend: str, marker: str) -> int:
    """The schema version just before the first migration step of `backend` that mentions `marker`."""
    steps = migrations(Dialect.SQLITE if backend == "sqlite" else Dialect.POSTGRES)
    return next(i for i, step in enumerate(steps) if marker in step)


def database_at(
    backend: str, version: int, rows: Sequence[str], *, path: Path, request: pytest.FixtureRequest | None = None
) -> str:
    """A database as the bot left it at schema `version`, with `rows` (INSERT statements) in it: a
    SQLite file at `path`, or the PostgreSQL test database (`request` reaches its fixture). Its URL."""
    if backend == "sqlite":
        db = sqlite3.connect(path)
        for step in migrations(Dialect.SQLITE)[:version]:
            db.executescript(step)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (?)", (version,))
        for row in rows:
            db.execute(row)
        db.commit()
        db.close()
        return f"sqlite:///{path}"
    import psycopg

    assert request is not None, "the PostgreSQL database comes from the postgres_url fixture"
    url: str = request.getfixturevalue("postgres_url")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute(f"INSERT INTO schema_version VALUES ({version})")
        for step in migrations(Dialect.POSTGRES)[:version]:
            for statement in filter(str.strip, step.split(";")):
                conn.execute(statement)
        for row in rows:
            conn.execute(row)
    return url
