"""Store behaviour in portable SQL, shared by the SQLite and PostgreSQL backends.

A backend supplies two primitives, `_execute` (returns the affected row count) and
`_fetch` (returns rows as dicts), and its own migrations. Statements use `?`
placeholders; a backend with another paramstyle translates them. Times are stored as
ISO-8601 text in UTC, which sorts correctly in both databases.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from bot.store.base import Action, Alert, AlertState, Subscription

__all__ = ["ACTIONS_TABLE", "DELIVERY_LEASE", "MESSAGE_INDEX", "SQLStore"]

Row = dict[str, Any]

# Schema pieces that read the same in both dialects, shared by their migrations. Shipped
# migrations never change: a new shape is a new migration in each backend.
ACTIONS_TABLE = """
    CREATE TABLE actions (
        key TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        action TEXT NOT NULL,
        user_id TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        state TEXT NOT NULL,
        detail TEXT,
        result TEXT
    );
    CREATE INDEX actions_by_run ON actions (run_id);
"""
DELIVERY_LEASE = """
    ALTER TABLE alerts ADD COLUMN owner TEXT;
    ALTER TABLE alerts ADD COLUMN lease_until TEXT;
"""
MESSAGE_INDEX = """
    CREATE INDEX alerts_by_message ON alerts (channel, ts);
"""


class SQLStore:
    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        raise NotImplementedError

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        raise NotImplementedError

    async def ping(self) -> None:
        await self._fetch("SELECT 1 AS ok")

    # -- alerts ----------------------------------------------------------------------

    async def claim_alert(
        self, key: str, channel: str, run_id: str, kind: str, now: datetime,
        *, owner: str | None = None, lease_until: datetime | None = None,
    ) -> bool:
        return await self._insert_alert(key, channel, run_id, kind, AlertState.CLAIMED, now, owner, lease_until)

    async def mark_seen(self, key: str, channel: str, run_id: str, kind: str, now: datetime) -> bool:
        return await self._insert_alert(key, channel, run_id, kind, AlertState.SEEN, now)

    async def _insert_alert(
        self, key: str, channel: str, run_id: str, kind: str, state: AlertState, now: datetime,
        owner: str | None = None, lease_until: datetime | None = None,
    ) -> bool:
        # The primary key makes this the single point where an alert is decided once,
        # however many schedulers race for it.
        inserted = await self._execute(
            "INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at, owner, lease_until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key, channel) DO NOTHING",
            (key, channel, run_id, kind, str(state), _iso(now), owner, _iso(lease_until) if lease_until else None),
        )
        return inserted == 1

    async def take_over(self, key: str, channel: str, *, owner: str, now: datetime, until: datetime) -> bool:
        """Hold the right to deliver this alert until `until`: it is ours, unowned, or its lease ran out."""
        taken = await self._execute(
            "UPDATE alerts SET owner = ?, lease_until = ? WHERE key = ? AND channel = ? AND state IN (?, ?)"
            " AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
            (owner, _iso(until), key, channel, str(AlertState.CLAIMED), str(AlertState.POSTED), owner, _iso(now)),
        )
        return taken == 1

    async def assign_batch(self, keys: list[str], channel: str, batch: str) -> None:
        for key in keys:
            await self._execute(
                "UPDATE alerts SET batch = ? WHERE key = ? AND channel = ? AND state = ?",
                (batch, key, channel, str(AlertState.CLAIMED)),
            )

    async def confirm_posted(self, key: str, channel: str, ts: str, now: datetime) -> None:
        await self._execute(
            "UPDATE alerts SET state = ?, ts = ?, posted_at = ?, last_error = NULL, next_attempt_at = NULL"
            " WHERE key = ? AND channel = ? AND state = ?",
            (str(AlertState.POSTED), ts, _iso(now), key, channel, str(AlertState.CLAIMED)),
        )

    async def delivery_failed(
        self, key: str, channel: str, *, error: str, unposted: bool, retry_at: datetime
    ) -> None:
        await self._execute(
            "UPDATE alerts SET attempts = attempts + 1, last_error = ?, unposted = ?, next_attempt_at = ?"
            " WHERE key = ? AND channel = ?",
            (error, 1 if unposted else 0, _iso(retry_at), key, channel),
        )

    async def release_claim(self, key: str, channel: str) -> None:
        await self._execute(
            "DELETE FROM alerts WHERE key = ? AND channel = ? AND state = ?", (key, channel, str(AlertState.CLAIMED))
        )

    async def set_outcome(self, key: str, channel: str, outcome: str) -> None:
        await self._execute("UPDATE alerts SET outcome = ? WHERE key = ? AND channel = ?", (outcome, key, channel))

    async def resolve_alert(self, key: str, channel: str, outcome: str, now: datetime) -> None:
        await self._execute(
            "UPDATE alerts SET state = ?, outcome = ?, resolved_at = ?, last_error = NULL, next_attempt_at = NULL"
            " WHERE key = ? AND channel = ?",
            (str(AlertState.RESOLVED), outcome, _iso(now), key, channel),
        )

    async def alerts_in_state(self, state: AlertState) -> list[Alert]:
        rows = await self._fetch("SELECT * FROM alerts WHERE state = ? ORDER BY claimed_at, key", (str(state),))
        return [_alert(r) for r in rows]

    async def deliveries_due(self, now: datetime) -> list[Alert]:
        """Claims to post and outcomes to edit in, whose next attempt is due: what a cycle delivers.

        Settled alerts (posted with no outcome yet, resolved, seen) are never read here, so
        a cycle costs the same after a year of alerts as on the first day.
        """
        rows = await self._fetch(
            "SELECT * FROM alerts WHERE (state = ? OR (state = ? AND outcome IS NOT NULL))"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY claimed_at, key",
            (str(AlertState.CLAIMED), str(AlertState.POSTED), _iso(now)),
        )
        return [_alert(r) for r in rows]

    async def alerts_for_run(self, run_id: str) -> list[Alert]:
        rows = await self._fetch("SELECT * FROM alerts WHERE run_id = ? ORDER BY claimed_at, key", (run_id,))
        return [_alert(r) for r in rows]

    async def alerts_at(self, channel: str, ts: str) -> list[Alert]:
        """The alerts posted as the message `ts` in `channel` (one, or a digest's many)."""
        rows = await self._fetch("SELECT * FROM alerts WHERE channel = ? AND ts = ? ORDER BY key", (channel, ts))
        return [_alert(r) for r in rows]

    async def get_alert(self, key: str, channel: str) -> Alert | None:
        rows = await self._fetch("SELECT * FROM alerts WHERE key = ? AND channel = ?", (key, channel))
        return _alert(rows[0]) if rows else None

    # -- subscriptions ------------------------------------------------------------------

    async def add_subscription(self, sub: Subscription) -> Subscription:
        rows = await self._fetch(
            "INSERT INTO subscriptions (channel, kinds, repo, workflow, labels, created_by)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (sub.channel, ",".join(sorted(sub.kinds)), sub.repo, sub.workflow, json.dumps(sub.labels), sub.created_by),
        )
        return Subscription(
            id=int(rows[0]["id"]), channel=sub.channel, kinds=sub.kinds, repo=sub.repo,
            workflow=sub.workflow, labels=dict(sub.labels), created_by=sub.created_by,
        )

    async def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        select = (
            "SELECT s.*, c.broken AS broken FROM subscriptions s LEFT JOIN channels c ON c.channel = s.channel"
        )
        if channel is None:
            rows = await self._fetch(select + " ORDER BY s.id")
        else:
            rows = await self._fetch(select + " WHERE s.channel = ? ORDER BY s.id", (channel,))
        return [_subscription(r) for r in rows]

    async def remove_subscriptions(self, channel: str, ids: list[int] | None) -> int:
        if ids is None:
            return await self._execute("DELETE FROM subscriptions WHERE channel = ?", (channel,))
        if not ids:
            return 0
        marks = ",".join("?" for _ in ids)
        return await self._execute(f"DELETE FROM subscriptions WHERE channel = ? AND id IN ({marks})", (channel, *ids))

    async def mark_broken(self, channel: str, reason: str | None) -> bool:
        if reason is None:
            return await self._execute("DELETE FROM channels WHERE channel = ?", (channel,)) > 0
        changed = await self._execute(
            "INSERT INTO channels (channel, broken) VALUES (?, ?)"
            " ON CONFLICT (channel) DO UPDATE SET broken = excluded.broken WHERE channels.broken <> excluded.broken",
            (channel, reason),
        )
        return changed > 0

    async def broken_channels(self) -> dict[str, str]:
        return {r["channel"]: r["broken"] for r in await self._fetch("SELECT channel, broken FROM channels")}

    # -- watermarks -----------------------------------------------------------------------

    async def get_mark(self, name: str) -> str | None:
        rows = await self._fetch("SELECT value FROM marks WHERE name = ?", (name,))
        return rows[0]["value"] if rows else None

    async def set_mark(self, name: str, value: str) -> None:
        await self._execute(
            "INSERT INTO marks (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # -- actions ------------------------------------------------------------------------------

    async def begin_action(self, action: Action) -> Action | None:
        # A failed or refused action may be tried again; a pending or done one may not.
        taken = await self._execute(
            "INSERT INTO actions (key, run_id, action, user_id, requested_at, state, detail)"
            " VALUES (?, ?, ?, ?, ?, 'pending', ?)"
            " ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, action = excluded.action,"
            " user_id = excluded.user_id, requested_at = excluded.requested_at, state = 'pending',"
            " detail = excluded.detail, result = NULL WHERE actions.state IN ('failed', 'refused')",
            (action.key, action.run_id, action.action, action.user_id, _iso(action.requested_at), action.detail),
        )
        if taken == 1:
            return None
        rows = await self._fetch("SELECT * FROM actions WHERE key = ?", (action.key,))
        return _action(rows[0]) if rows else None

    async def finish_action(self, key: str, *, state: str, result: str) -> None:
        await self._execute("UPDATE actions SET state = ?, result = ? WHERE key = ?", (state, result, key))

    async def actions_for_run(self, run_id: str) -> list[Action]:
        rows = await self._fetch("SELECT * FROM actions WHERE run_id = ? ORDER BY requested_at, key", (run_id,))
        return [_action(r) for r in rows]


def _iso(when: datetime) -> str:
    # Fixed width in UTC, so comparing the text compares the times (lease expiry is compared in SQL).
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _alert(row: Row) -> Alert:
    return Alert(
        key=row["key"], channel=row["channel"], run_id=row["run_id"], kind=row["kind"],
        state=AlertState(row["state"]), ts=row["ts"], claimed_at=_time(row["claimed_at"]),
        outcome=row["outcome"], batch=row["batch"], attempts=int(row["attempts"] or 0),
        next_attempt_at=_time(row["next_attempt_at"]), last_error=row["last_error"],
        unposted=bool(row["unposted"]),
    )


def _subscription(row: Row) -> Subscription:
    return Subscription(
        id=int(row["id"]), channel=row["channel"], kinds=frozenset(filter(None, row["kinds"].split(","))),
        repo=row["repo"], workflow=row["workflow"], labels=json.loads(row["labels"] or "{}"),
        created_by=row["created_by"], broken=row["broken"],
    )


def _action(row: Row) -> Action:
    return Action(
        key=row["key"], run_id=row["run_id"], action=row["action"], user_id=row["user_id"],
        requested_at=datetime.fromisoformat(row["requested_at"]), state=row["state"],
        detail=row["detail"], result=row["result"],
    )
