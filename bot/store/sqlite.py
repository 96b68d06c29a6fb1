"""The SQLite store: one file, WAL mode, every call run off the event loop."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.store.base import Alert, AlertState, Subscription

__all__ = ["SQLiteStore"]

MIGRATIONS: list[str] = [
    """
    CREATE TABLE alerts (
        key TEXT NOT NULL,
        channel TEXT NOT NULL,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        ts TEXT,
        claimed_at TEXT NOT NULL,
        posted_at TEXT,
        resolved_at TEXT,
        outcome TEXT,
        PRIMARY KEY (key, channel)
    );
    CREATE INDEX alerts_by_run ON alerts (run_id);
    CREATE INDEX alerts_by_state ON alerts (state);
    CREATE TABLE subscriptions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        kinds TEXT NOT NULL,
        repo TEXT,
        workflow TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        created_by TEXT,
        broken TEXT
    );
    CREATE TABLE marks (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]


class SQLiteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL" if self.path == ":memory:" else "PRAGMA synchronous=FULL")
            _migrate(db)
            return db

        self._db = await asyncio.to_thread(connect)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    async def _run(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        assert self._db is not None, "store is not open"
        db = self._db
        async with self._lock:
            return await asyncio.to_thread(db.execute, sql, params)

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        assert self._db is not None, "store is not open"
        db = self._db
        async with self._lock:
            return await asyncio.to_thread(lambda: db.execute(sql, params).fetchall())

    # -- alerts ----------------------------------------------------------------------

    async def claim_alert(self, key: str, channel: str, run_id: str, kind: str, now: datetime) -> bool:
        return await self._insert_alert(key, channel, run_id, kind, AlertState.CLAIMED, now)

    async def mark_seen(self, key: str, channel: str, run_id: str, kind: str, now: datetime) -> bool:
        return await self._insert_alert(key, channel, run_id, kind, AlertState.SEEN, now)

    async def _insert_alert(
        self, key: str, channel: str, run_id: str, kind: str, state: AlertState, now: datetime
    ) -> bool:
        # The primary key makes this the single point where an alert is decided once.
        cursor = await self._run(
            "INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key, channel) DO NOTHING",
            (key, channel, run_id, kind, state, now.isoformat()),
        )
        return cursor.rowcount == 1

    async def confirm_posted(self, key: str, channel: str, ts: str, now: datetime) -> None:
        await self._run(
            "UPDATE alerts SET state = ?, ts = ?, posted_at = ? WHERE key = ? AND channel = ?",
            (AlertState.POSTED, ts, now.isoformat(), key, channel),
        )

    async def release_claim(self, key: str, channel: str) -> None:
        await self._run(
            "DELETE FROM alerts WHERE key = ? AND channel = ? AND state = ?", (key, channel, AlertState.CLAIMED)
        )

    async def resolve_alert(self, key: str, channel: str, outcome: str, now: datetime) -> None:
        await self._run(
            "UPDATE alerts SET state = ?, outcome = ?, resolved_at = ? WHERE key = ? AND channel = ?",
            (AlertState.RESOLVED, outcome, now.isoformat(), key, channel),
        )

    async def alerts_in_state(self, state: AlertState) -> list[Alert]:
        return [_alert(r) for r in await self._rows("SELECT * FROM alerts WHERE state = ? ORDER BY claimed_at", (state,))]

    async def alerts_for_run(self, run_id: str) -> list[Alert]:
        return [_alert(r) for r in await self._rows("SELECT * FROM alerts WHERE run_id = ? ORDER BY claimed_at", (run_id,))]

    # -- subscriptions ------------------------------------------------------------------

    async def add_subscription(self, sub: Subscription) -> Subscription:
        cursor = await self._run(
            "INSERT INTO subscriptions (channel, kinds, repo, workflow, labels, created_by) VALUES (?, ?, ?, ?, ?, ?)",
            (sub.channel, ",".join(sorted(sub.kinds)), sub.repo, sub.workflow, json.dumps(sub.labels), sub.created_by),
        )
        return Subscription(
            id=int(cursor.lastrowid or 0), channel=sub.channel, kinds=sub.kinds, repo=sub.repo,
            workflow=sub.workflow, labels=dict(sub.labels), created_by=sub.created_by,
        )

    async def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        if channel is None:
            rows = await self._rows("SELECT * FROM subscriptions ORDER BY id")
        else:
            rows = await self._rows("SELECT * FROM subscriptions WHERE channel = ? ORDER BY id", (channel,))
        return [_subscription(r) for r in rows]

    async def remove_subscriptions(self, channel: str, ids: list[int] | None) -> int:
        if ids is None:
            cursor = await self._run("DELETE FROM subscriptions WHERE channel = ?", (channel,))
        else:
            marks = ",".join("?" for _ in ids) or "NULL"
            cursor = await self._run(f"DELETE FROM subscriptions WHERE channel = ? AND id IN ({marks})", (channel, *ids))
        return cursor.rowcount

    async def mark_broken(self, channel: str, reason: str | None) -> None:
        await self._run("UPDATE subscriptions SET broken = ? WHERE channel = ?", (reason, channel))

    # -- watermarks -----------------------------------------------------------------------

    async def get_mark(self, name: str) -> str | None:
        rows = await self._rows("SELECT value FROM marks WHERE name = ?", (name,))
        return rows[0]["value"] if rows else None

    async def set_mark(self, name: str, value: str) -> None:
        await self._run(
            "INSERT INTO marks (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )


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


def _alert(row: sqlite3.Row) -> Alert:
    return Alert(
        key=row["key"], channel=row["channel"], run_id=row["run_id"], kind=row["kind"],
        state=AlertState(row["state"]), ts=row["ts"],
        claimed_at=datetime.fromisoformat(row["claimed_at"]) if row["claimed_at"] else None,
        outcome=row["outcome"],
    )


def _subscription(row: sqlite3.Row) -> Subscription:
    return Subscription(
        id=row["id"], channel=row["channel"], kinds=frozenset(filter(None, row["kinds"].split(","))),
        repo=row["repo"], workflow=row["workflow"], labels=json.loads(row["labels"] or "{}"),
        created_by=row["created_by"], broken=row["broken"],
    )
