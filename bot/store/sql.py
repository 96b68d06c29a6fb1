"""Store behaviour in portable SQL, shared by the SQLite and PostgreSQL backends.

A backend supplies two primitives, `_execute` (returns the affected row count) and
`_fetch` (returns rows as dicts), and applies the schema's migrations in its dialect (`schema.py`). Statements use `?`
placeholders; a backend with another paramstyle translates them. Times are stored as
ISO-8601 text in UTC, which sorts correctly in both databases.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.core.keys import ActionKey, ActionState, AlertKey, Verb
from bot.core.outcomes import Outcome
from bot.core.records import (
    Action,
    Alert,
    AlertState,
    Binding,
    ChannelSetup,
    ChannelSummary,
    Follow,
    IndexedRun,
    Mute,
    Subscription,
    UserLink,
)
from bot.fabro.models import ACTIVE_BUCKETS

__all__ = ["TERMINAL_BUCKETS", "Row", "SQLStore"]

log = logging.getLogger(__name__)

Row = dict[str, Any]


# The buckets of runs that ended: only their index entries and follows are ever forgotten.
TERMINAL_BUCKETS = ("succeeded", "failed", "archived", "dead")
_TERMINAL = ", ".join(f"'{b}'" for b in TERMINAL_BUCKETS)
# The buckets of runs at work: a failed run seen in one again was resumed in place.
_AT_WORK = ", ".join(f"'{b}'" for b in ACTIVE_BUCKETS)

# A run's alerts are forgotten together, once none of them is pending, waiting or newer than the
# cutoff, and the run is not followed: its once-keys (thread replies, reminders) go with the alerts
# they guard, so nothing forgotten can be posted again while its run still shows in Slack.
_FORGETTABLE_RUNS = """
    SELECT a.run_id FROM alerts a WHERE a.claimed_at < ?
    AND NOT EXISTS (
        SELECT 1 FROM alerts b WHERE b.run_id = a.run_id AND (
            b.claimed_at >= ? OR b.state = 'claimed'
            OR (b.state = 'posted' AND (b.outcome IS NOT NULL OR b.kind IN ('question', 'approval')))
        )
    )
    AND NOT EXISTS (SELECT 1 FROM follows f WHERE f.run_id = a.run_id)
    ORDER BY a.claimed_at LIMIT ?
"""


# The queries every cycle runs, with their states written out so that they match the partial
# indexes above (a `?` would not); tests check their plans on both backends.
DELIVERIES_DUE = (
    "SELECT * FROM alerts WHERE (state = 'claimed' OR (state = 'posted' AND outcome IS NOT NULL))"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY claimed_at, key"
)
WAITING_ALERTS = (
    "SELECT * FROM alerts WHERE state = 'posted' AND outcome IS NULL AND kind IN ('question', 'approval')"
    " ORDER BY claimed_at, key"
)


class SQLStore:
    statements: int = 0  # every statement sent, for the benchmarks and /metrics

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        raise NotImplementedError

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        raise NotImplementedError

    async def ping(self, now: datetime) -> None:
        """A real write: a locked, read-only or vanished database fails it (a read would not)."""
        await self.set_mark("health.ping", _iso(now))

    # -- alerts ----------------------------------------------------------------------

    async def claim_alert(
        self,
        key: AlertKey,
        channel: str,
        now: datetime,
        *,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> bool:
        # The primary key makes this the single point where an alert is decided once,
        # however many schedulers race for it.
        inserted = await self._execute(
            "INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at, owner, lease_until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key, channel) DO NOTHING",
            (
                key.encode(),
                channel,
                key.run_id,
                str(key.kind),
                str(AlertState.CLAIMED),
                _iso(now),
                owner,
                _iso(lease_until) if lease_until else None,
            ),
        )
        return inserted == 1

    async def take_over(self, key: AlertKey, channel: str, *, owner: str, now: datetime, until: datetime) -> bool:
        """Hold the right to deliver this alert until `until`: it is ours, unowned, or its lease ran out."""
        taken = await self._execute(
            "UPDATE alerts SET owner = ?, lease_until = ? WHERE key = ? AND channel = ? AND state IN (?, ?)"
            " AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
            (
                owner,
                _iso(until),
                key.encode(),
                channel,
                str(AlertState.CLAIMED),
                str(AlertState.POSTED),
                owner,
                _iso(now),
            ),
        )
        return taken == 1

    async def assign_batch(self, keys: list[AlertKey], channel: str, batch: str) -> None:
        for key in keys:
            await self._execute(
                "UPDATE alerts SET batch = ? WHERE key = ? AND channel = ? AND state = ?",
                (batch, key.encode(), channel, str(AlertState.CLAIMED)),
            )

    async def confirm_posted(self, key: AlertKey, channel: str, ts: str, now: datetime) -> None:
        await self._execute(
            "UPDATE alerts SET state = ?, ts = ?, posted_at = ?, last_error = NULL, next_attempt_at = NULL"
            " WHERE key = ? AND channel = ? AND state = ?",
            (str(AlertState.POSTED), ts, _iso(now), key.encode(), channel, str(AlertState.CLAIMED)),
        )

    async def delivery_failed(
        self, key: AlertKey, channel: str, *, error: str, unposted: bool, retry_at: datetime
    ) -> None:
        await self._execute(
            "UPDATE alerts SET attempts = attempts + 1, last_error = ?, unposted = ?, next_attempt_at = ?"
            " WHERE key = ? AND channel = ?",
            (error, 1 if unposted else 0, _iso(retry_at), key.encode(), channel),
        )

    async def set_outcome(self, key: AlertKey, channel: str, outcome: Outcome) -> None:
        await self._execute(
            "UPDATE alerts SET outcome = ? WHERE key = ? AND channel = ?", (outcome.dump(), key.encode(), channel)
        )

    async def resolve_alert(self, key: AlertKey, channel: str, outcome: Outcome, now: datetime) -> None:
        await self._execute(
            "UPDATE alerts SET state = ?, outcome = ?, resolved_at = ?, last_error = NULL, next_attempt_at = NULL"
            " WHERE key = ? AND channel = ?",
            (str(AlertState.RESOLVED), outcome.dump(), _iso(now), key.encode(), channel),
        )

    async def deliveries_due(self, now: datetime) -> list[Alert]:
        """Claims to post and outcomes to edit in, whose next attempt is due: what a cycle delivers.

        Settled alerts (posted with no outcome yet, resolved) are never read here, so a
        cycle costs the same after a year of alerts as on the first day.
        """
        rows = await self._fetch(DELIVERIES_DUE, (_iso(now),))
        return _alerts(rows)

    async def alerts_for_run(self, run_id: str) -> list[Alert]:
        rows = await self._fetch("SELECT * FROM alerts WHERE run_id = ? ORDER BY claimed_at, key", (run_id,))
        return _alerts(rows)

    async def waiting_alerts(self) -> list[Alert]:
        """Questions and approvals in Slack still waiting for someone (posted, no outcome yet)."""
        return _alerts(await self._fetch(WAITING_ALERTS))

    async def alerts_at(self, channel: str, ts: str) -> list[Alert]:
        """The alerts posted as the message `ts` in `channel` (one, or a digest's many)."""
        rows = await self._fetch("SELECT * FROM alerts WHERE channel = ? AND ts = ? ORDER BY key", (channel, ts))
        return _alerts(rows)

    # -- subscriptions ------------------------------------------------------------------

    async def add_subscription(self, sub: Subscription) -> Subscription:
        rows = await self._fetch(
            "INSERT INTO subscriptions (channel, kinds, repo, workflow, labels, created_by, narrow, caught_up)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0) RETURNING id",
            (
                sub.channel,
                ",".join(sorted(sub.kinds)),
                sub.repo,
                sub.workflow,
                json.dumps(sub.labels),
                sub.created_by,
                _narrow_json(sub),
            ),
        )
        return replace(sub, id=int(rows[0]["id"]), labels=dict(sub.labels), broken=None, caught_up=False)

    async def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        select = "SELECT s.*, c.broken AS broken FROM subscriptions s LEFT JOIN channels c ON c.channel = s.channel"
        if channel is None:
            rows = await self._fetch(select + " ORDER BY s.id")
        else:
            rows = await self._fetch(select + " WHERE s.channel = ? ORDER BY s.id", (channel,))
        return [_subscription(r) for r in rows]

    async def caught_up(self, sub_id: int) -> None:
        await self._execute("UPDATE subscriptions SET caught_up = 1 WHERE id = ?", (sub_id,))

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

    # -- runs followed in channels ---------------------------------------------------------

    async def add_follow(self, follow: Follow) -> bool:
        inserted = await self._execute(
            "INSERT INTO follows (run_id, channel, ts, last_seq, created_by, created_at, thread_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, channel) DO UPDATE SET ts = excluded.ts,"
            " last_seq = excluded.last_seq, created_by = excluded.created_by, created_at = excluded.created_at,"
            " thread_ts = excluded.thread_ts, ended_at = NULL WHERE follows.ended_at IS NOT NULL",
            (
                follow.run_id,
                follow.channel,
                follow.ts,
                follow.last_seq,
                follow.created_by,
                _iso(follow.created_at),
                follow.thread_ts,
            ),
        )
        return inserted == 1

    async def follows(self, run_id: str | None = None) -> list[Follow]:
        if run_id is None:
            rows = await self._fetch(
                "SELECT * FROM follows WHERE ended_at IS NULL ORDER BY created_at, run_id, channel"
            )
        else:
            rows = await self._fetch(
                "SELECT * FROM follows WHERE run_id = ? AND ended_at IS NULL ORDER BY channel", (run_id,)
            )
        return [_follow(r) for r in rows]

    async def follow_at(self, channel: str, ts: str) -> Follow | None:
        rows = await self._fetch(
            "SELECT * FROM follows WHERE channel = ? AND (ts = ? OR thread_ts = ?) AND ended_at IS NULL",
            (channel, ts, ts),
        )
        return _follow(rows[0]) if rows else None

    async def set_follow_seq(self, run_id: str, channel: str, seq: int) -> None:
        await self._execute(
            "UPDATE follows SET last_seq = ? WHERE run_id = ? AND channel = ? AND last_seq < ?",
            (seq, run_id, channel, seq),
        )

    async def remove_follow(self, run_id: str, channel: str) -> bool:
        return await self._execute("DELETE FROM follows WHERE run_id = ? AND channel = ?", (run_id, channel)) > 0

    async def end_follow(self, run_id: str, channel: str, at: datetime) -> bool:
        changed = await self._execute(
            "UPDATE follows SET ended_at = ? WHERE run_id = ? AND channel = ? AND ended_at IS NULL",
            (_iso(at), run_id, channel),
        )
        return changed > 0

    async def ended_follows(self, run_id: str) -> list[Follow]:
        rows = await self._fetch(
            "SELECT * FROM follows WHERE run_id = ? AND ended_at IS NOT NULL ORDER BY channel", (run_id,)
        )
        return [_follow(r) for r in rows]

    async def reopen_follow(self, run_id: str, channel: str) -> bool:
        changed = await self._execute(
            "UPDATE follows SET ended_at = NULL WHERE run_id = ? AND channel = ? AND ended_at IS NOT NULL",
            (run_id, channel),
        )
        return changed > 0

    # -- Slack users linked to Fabro logins ---------------------------------------------

    async def add_link(self, link: UserLink) -> str:
        """Link `login` to `user_id` unless it is someone's already; returns who holds it now."""
        await self._execute(
            "INSERT INTO links (login, user_id, created_at, proof) VALUES (?, ?, ?, ?) ON CONFLICT (login) DO NOTHING",
            (link.login, link.user_id, _iso(link.created_at), link.proof),
        )
        rows = await self._fetch("SELECT user_id FROM links WHERE login = ?", (link.login,))
        return str(rows[0]["user_id"]) if rows else link.user_id

    async def links(self, *, user_id: str | None = None, login: str | None = None) -> list[UserLink]:
        sql = "SELECT * FROM links"
        params: tuple[str, ...] = ()
        if user_id is not None:
            sql, params = sql + " WHERE user_id = ?", (user_id,)
        elif login is not None:
            sql, params = sql + " WHERE login = ?", (login,)
        rows = await self._fetch(sql + " ORDER BY login", params)
        return [
            UserLink(r["login"], r["user_id"], _time(r["created_at"]) or datetime.fromtimestamp(0, UTC), r.get("proof"))
            for r in rows
        ]

    async def remove_links(self, user_id: str, login: str | None = None) -> int:
        if login is None:
            return await self._execute("DELETE FROM links WHERE user_id = ?", (user_id,))
        return await self._execute("DELETE FROM links WHERE user_id = ? AND login = ?", (user_id, login))

    async def set_notify(self, user_id: str, kinds: frozenset[str], now: datetime) -> None:
        await self._execute(
            "INSERT INTO notify (user_id, kinds, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET kinds = excluded.kinds, updated_at = excluded.updated_at",
            (user_id, ",".join(sorted(kinds)), _iso(now)),
        )

    async def notify_of(self, user_id: str) -> frozenset[str] | None:
        rows = await self._fetch("SELECT kinds FROM notify WHERE user_id = ?", (user_id,))
        if not rows:
            return None
        return frozenset(k for k in str(rows[0]["kinds"]).split(",") if k)

    # -- the index of runs, for each person's Home ------------------------------------------

    async def index_run(self, entry: IndexedRun) -> None:
        await self._execute(
            "INSERT INTO runs (run_id, owner, login, status, title, web_url, updated_at, cost_micros, retried_as)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, login = excluded.login,"
            " status = excluded.status, title = excluded.title, web_url = excluded.web_url,"
            " updated_at = excluded.updated_at, cost_micros = excluded.cost_micros,"
            # Learned from the retry, not from the run itself: what Fabro says of the run keeps it,
            # until the run is at work again (resumed in place): a retry was of an earlier failure;
            # and an entry read before a newer retry was noted (by mark_retried, here or on another
            # replica) never writes the older one back. Run ids sort by creation.
            f" retried_as = CASE WHEN excluded.status IN ({_AT_WORK}) THEN NULL"
            " WHEN runs.retried_as IS NULL OR excluded.retried_as > runs.retried_as THEN excluded.retried_as"
            " ELSE runs.retried_as END",
            (
                entry.run_id,
                entry.owner,
                entry.login,
                entry.status,
                entry.title,
                entry.web_url,
                _iso(entry.updated_at),
                entry.cost_micros,
                entry.retried_as,
            ),
        )

    async def mark_retried(self, run_id: str, retry_id: str) -> bool:
        """Run ids are ULIDs, which sort by creation: of several retries, the newest is kept."""
        return bool(
            await self._execute(
                "UPDATE runs SET retried_as = ? WHERE run_id = ? AND (retried_as IS NULL OR retried_as < ?)",
                (retry_id, run_id, retry_id),
            )
        )

    async def spend_between(self, start: datetime, end: datetime) -> tuple[int, list[IndexedRun]]:
        """What the runs last changed in [start, end) have cost (micro-dollars), and the five costliest."""
        rows = await self._fetch(
            "SELECT COALESCE(SUM(cost_micros), 0) AS spent FROM runs WHERE updated_at >= ? AND updated_at < ?",
            (_iso(start), _iso(end)),
        )
        top = await self._fetch(
            "SELECT * FROM runs WHERE updated_at >= ? AND updated_at < ? AND cost_micros IS NOT NULL"
            " ORDER BY cost_micros DESC, run_id LIMIT 5",
            (_iso(start), _iso(end)),
        )
        return int(rows[0]["spent"] or 0), [_indexed(r) for r in top]

    async def indexed_run(self, run_id: str) -> IndexedRun | None:
        rows = await self._fetch("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return _indexed(rows[0]) if rows else None

    async def runs_of(
        self,
        owner: str,
        logins: list[str],
        limit: int,
        *,
        offset: int = 0,
        statuses: tuple[str, ...] | None = None,
        hidden: tuple[str, ...] = (),
        order: str = "updated_at",
        ascending: bool = False,
    ) -> list[IndexedRun]:
        """A person's runs, by the owner rule: theirs by the bot's record, or by one of their logins.

        `statuses` keeps only those buckets, `hidden` leaves some out; `order` is `updated_at` or
        `created_at` (run ids are ULIDs: they sort by creation).
        """
        where, params = self._owner_rule(owner, logins, statuses, hidden)
        direction = "ASC" if ascending else "DESC"
        keys = f"run_id {direction}" if order == "created_at" else f"updated_at {direction}, run_id {direction}"
        rows = await self._fetch(
            f"SELECT * FROM runs WHERE {where} ORDER BY {keys} LIMIT ? OFFSET ?", (*params, limit, offset)
        )
        return [_indexed(r) for r in rows]

    async def count_runs_of(
        self, owner: str, logins: list[str], *, statuses: tuple[str, ...] | None = None, hidden: tuple[str, ...] = ()
    ) -> int:
        where, params = self._owner_rule(owner, logins, statuses, hidden)
        rows = await self._fetch(f"SELECT COUNT(*) AS n FROM runs WHERE {where}", params)
        return int(rows[0]["n"]) if rows else 0

    @staticmethod
    def _owner_rule(
        owner: str, logins: list[str], statuses: tuple[str, ...] | None, hidden: tuple[str, ...]
    ) -> tuple[str, tuple[Any, ...]]:
        marks = ", ".join("?" for _ in logins) or "NULL"
        where = f"(owner = ? OR (owner IS NULL AND login IN ({marks})))"
        params: tuple[Any, ...] = (owner, *logins)
        if statuses is not None:
            where += f" AND status IN ({', '.join('?' for _ in statuses) or 'NULL'})"
            params += tuple(statuses)
        if hidden:
            where += f" AND status NOT IN ({', '.join('?' for _ in hidden)})"
            params += tuple(hidden)
        return where, params

    # -- mutes ---------------------------------------------------------------------------

    async def mute(self, mute: Mute) -> None:
        await self._execute(
            "INSERT INTO mutes (channel, run_id, until, created_by, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (channel, run_id) DO UPDATE SET until = excluded.until,"
            " created_by = excluded.created_by, created_at = excluded.created_at",
            (
                mute.channel,
                mute.run_id,
                _iso(mute.until) if mute.until else None,
                mute.created_by,
                _iso(mute.created_at),
            ),
        )

    async def unmute(self, channel: str, run_id: str) -> bool:
        return await self._execute("DELETE FROM mutes WHERE channel = ? AND run_id = ?", (channel, run_id)) > 0

    async def mutes(self, now: datetime, *, channel: str | None = None, run_id: str | None = None) -> list[Mute]:
        where, params = ["(until IS NULL OR until > ?)"], [_iso(now)]
        if channel is not None:
            where.append("channel = ?")
            params.append(channel)
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        rows = await self._fetch(
            f"SELECT * FROM mutes WHERE {' AND '.join(where)} ORDER BY created_at, run_id", tuple(params)
        )
        return [
            Mute(
                channel=r["channel"],
                run_id=r["run_id"],
                until=datetime.fromisoformat(r["until"]) if r["until"] else None,
                created_by=r["created_by"],
                created_at=datetime.fromisoformat(r["created_at"]),
            )
            for r in rows
        ]

    # -- daily summaries ---------------------------------------------------------------

    async def set_summary(self, summary: ChannelSummary) -> None:
        await self._execute(
            "INSERT INTO summaries (channel, at, tz, created_by, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (channel) DO UPDATE SET at = excluded.at, tz = excluded.tz,"
            " created_by = excluded.created_by, created_at = excluded.created_at",
            (summary.channel, summary.at, summary.tz, summary.created_by, _iso(summary.created_at)),
        )

    async def remove_summary(self, channel: str) -> bool:
        return await self._execute("DELETE FROM summaries WHERE channel = ?", (channel,)) > 0

    async def summaries(self, channel: str | None = None) -> list[ChannelSummary]:
        if channel is None:
            rows = await self._fetch("SELECT * FROM summaries ORDER BY channel")
        else:
            rows = await self._fetch("SELECT * FROM summaries WHERE channel = ?", (channel,))
        return [
            ChannelSummary(r["channel"], r["at"], r["tz"], r["created_by"], datetime.fromisoformat(r["created_at"]))
            for r in rows
        ]

    # -- what channels work on -----------------------------------------------------------

    async def set_setup(self, setup: ChannelSetup) -> None:
        await self._execute(
            "INSERT INTO setups (channel, repository, branch, workflow, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (channel) DO UPDATE SET repository = excluded.repository, branch = excluded.branch,"
            " workflow = excluded.workflow, set_by = excluded.set_by, set_at = excluded.set_at",
            (setup.channel, setup.repository, setup.branch, setup.workflow, setup.set_by, _iso(setup.set_at)),
        )

    async def setup_of(self, channel: str) -> ChannelSetup | None:
        rows = await self._fetch("SELECT * FROM setups WHERE channel = ?", (channel,))
        if not rows:
            return None
        r = rows[0]
        return ChannelSetup(
            r["channel"], r["repository"], r["branch"], r["workflow"], r["set_by"], datetime.fromisoformat(r["set_at"])
        )

    async def remove_setup(self, channel: str) -> bool:
        return await self._execute("DELETE FROM setups WHERE channel = ?", (channel,)) > 0

    # -- watermarks -----------------------------------------------------------------------

    async def get_mark(self, name: str) -> str | None:
        rows = await self._fetch("SELECT value FROM marks WHERE name = ?", (name,))
        return rows[0]["value"] if rows else None

    async def add_mark(self, name: str, value: str) -> bool:
        """Set the mark unless it exists; True when this call set it (one of two racing callers wins)."""
        return (
            await self._execute(
                "INSERT INTO marks (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, value)
            )
            == 1
        )

    async def set_mark(self, name: str, value: str) -> None:
        await self._execute(
            "INSERT INTO marks (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # -- actions ------------------------------------------------------------------------------

    async def unsettled(self, verb: Verb, *, before: datetime) -> list[Action]:
        rows = await self._fetch(
            "SELECT * FROM actions WHERE action = ? AND state = ? AND requested_at < ? ORDER BY requested_at",
            (str(verb), str(ActionState.PENDING), _iso(before)),
        )
        return _actions(rows)

    async def begin_action(self, action: Action, *, stale_before: datetime) -> Action | None:
        # A failed or refused action may be tried again, and so may a pending one that was
        # never settled (its process died); a recent pending one or a done one may not.
        taken = await self._execute(
            "INSERT INTO actions (key, run_id, action, user_id, requested_at, state, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, action = excluded.action,"
            " user_id = excluded.user_id, requested_at = excluded.requested_at, state = excluded.state,"
            " detail = excluded.detail, result = NULL, outcome = NULL"
            " WHERE actions.state IN (?, ?) OR (actions.state = ? AND actions.requested_at < ?)",
            (
                action.key.encode(),
                action.run_id,
                str(action.verb),
                action.user_id,
                _iso(action.requested_at),
                str(ActionState.PENDING),
                action.detail,
                str(ActionState.FAILED),
                str(ActionState.REFUSED),
                str(ActionState.PENDING),
                _iso(stale_before),
            ),
        )
        if taken == 1:
            return None
        rows = await self._fetch("SELECT * FROM actions WHERE key = ?", (action.key.encode(),))
        earlier = _actions(rows)
        return earlier[0] if earlier else None

    async def finish_action(
        self, key: ActionKey, *, state: ActionState, note: str | None = None, outcome: Outcome | None = None
    ) -> None:
        await self._execute(
            "UPDATE actions SET state = ?, result = ?, outcome = ? WHERE key = ?",
            (str(state), note, outcome.dump() if outcome else None, key.encode()),
        )

    async def actions_for_run(self, run_id: str) -> list[Action]:
        rows = await self._fetch("SELECT * FROM actions WHERE run_id = ? ORDER BY requested_at, key", (run_id,))
        return _actions(rows)

    # -- windows and confirmations ----------------------------------------------------------------

    async def add_binding(self, binding: Binding) -> None:
        await self._execute(
            "INSERT INTO bindings (nonce, user_id, what, until) VALUES (?, ?, ?, ?)",
            (binding.nonce, binding.user_id, binding.what, _iso(binding.until)),
        )

    async def binding(self, nonce: str) -> Binding | None:
        rows = await self._fetch("SELECT * FROM bindings WHERE nonce = ?", (nonce,))
        if not rows:
            return None
        r = rows[0]
        return Binding(r["nonce"], r["user_id"], r["what"], datetime.fromisoformat(r["until"]))

    # -- retention --------------------------------------------------------------------------------

    async def forget(self, before: datetime, *, batch: int) -> int:
        """Delete one small batch of what ended before `before`; returns how many rows went.

        Never what is pending (a claim, an edit to make, an action in flight), waiting on someone
        (a posted question or approval), or followed: only what no message in Slack still needs.
        """
        cutoff = _iso(before)
        gone = await self._execute(
            "DELETE FROM follows WHERE run_id IN (SELECT f.run_id FROM follows f WHERE f.created_at < ? AND EXISTS"
            f" (SELECT 1 FROM runs r WHERE r.run_id = f.run_id AND r.status IN ({_TERMINAL}) AND r.updated_at < ?)"
            " LIMIT ?)",
            (cutoff, cutoff, batch),
        )
        # A follow ended that long ago is not taken up again by a resume: its thread has gone quiet.
        gone += await self._execute(
            "DELETE FROM follows WHERE (run_id, channel) IN (SELECT run_id, channel FROM follows"
            " WHERE ended_at IS NOT NULL AND ended_at < ? ORDER BY ended_at LIMIT ?)",
            (cutoff, batch),
        )
        gone += await self._execute(
            f"DELETE FROM alerts WHERE run_id IN ({_FORGETTABLE_RUNS})", (cutoff, cutoff, batch)
        )
        gone += await self._execute(
            "DELETE FROM actions WHERE key IN (SELECT key FROM actions WHERE requested_at < ? AND state <> ?"
            " AND NOT EXISTS (SELECT 1 FROM alerts b WHERE b.run_id = actions.run_id) ORDER BY requested_at LIMIT ?)",
            (cutoff, str(ActionState.PENDING), batch),
        )
        gone += await self._execute(
            "DELETE FROM bindings WHERE nonce IN (SELECT nonce FROM bindings WHERE until < ? LIMIT ?)", (cutoff, batch)
        )
        gone += await self._execute(
            "DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs r WHERE r.updated_at < ?"
            f" AND r.status IN ({_TERMINAL}) AND NOT EXISTS (SELECT 1 FROM follows f WHERE f.run_id = r.run_id)"
            " ORDER BY r.updated_at LIMIT ?)",
            (cutoff, batch),
        )
        return gone


def _iso(when: datetime) -> str:
    # Fixed width in UTC, so comparing the text compares the times (lease expiry is compared in SQL).
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _alerts(rows: list[Row]) -> list[Alert]:
    alerts = []
    for row in rows:
        key = AlertKey.parse(row["key"])
        if key is None:
            log.warning("skipped a stored alert whose key cannot be read: %r", str(row["key"])[:80])
            continue
        alerts.append(
            Alert(
                key=key,
                channel=row["channel"],
                state=AlertState(row["state"]),
                ts=row["ts"],
                claimed_at=_time(row["claimed_at"]),
                outcome=Outcome.load(row["outcome"]),
                batch=row["batch"],
                attempts=int(row["attempts"] or 0),
                next_attempt_at=_time(row["next_attempt_at"]),
                last_error=row["last_error"],
                unposted=bool(row["unposted"]),
            )
        )
    return alerts


def _indexed(r: Row) -> IndexedRun:
    return IndexedRun(
        r["run_id"],
        r["owner"],
        r["login"],
        r["status"],
        r["title"],
        r["web_url"],
        datetime.fromisoformat(r["updated_at"]),
        r.get("cost_micros"),
        r.get("retried_as"),
    )


def _follow(row: Row) -> Follow:
    return Follow(
        run_id=row["run_id"],
        channel=row["channel"],
        ts=row["ts"],
        created_by=row["created_by"],
        created_at=datetime.fromisoformat(row["created_at"]),
        last_seq=int(row["last_seq"] or 0),
        thread_ts=row.get("thread_ts"),
        ended_at=_time(row.get("ended_at")),
    )


def _subscription(row: Row) -> Subscription:
    return Subscription(
        id=int(row["id"]),
        channel=row["channel"],
        kinds=frozenset(filter(None, row["kinds"].split(","))),
        repo=row["repo"],
        workflow=row["workflow"],
        labels=json.loads(row["labels"] or "{}"),
        created_by=row["created_by"],
        broken=row["broken"],
        caught_up=bool(row.get("caught_up", 1)),
        **_narrow_of(row.get("narrow")),
    )


_NARROW_FIELDS = ("by", "not_by", "not_repos", "not_workflows")


def _narrow_json(sub: Subscription) -> str | None:
    data = {name: list(getattr(sub, name)) for name in _NARROW_FIELDS if getattr(sub, name)}
    return json.dumps(data) if data else None


def _narrow_of(text: str | None) -> dict[str, tuple[str, ...]]:
    """The stored filters; anything unreadable narrows nothing rather than losing the subscription."""
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        log.warning("a subscription's filters could not be read: %r", text[:100] if text else text)
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        name: tuple(v for v in data[name] if isinstance(v, str))
        for name in _NARROW_FIELDS
        if isinstance(data.get(name), list)
    }


def _actions(rows: list[Row]) -> list[Action]:
    actions = []
    for row in rows:
        key = ActionKey.parse(row["key"])
        if key is None or row["action"] not in Verb.__members__.values():
            log.warning("skipped a stored action that cannot be read: %r", str(row["key"])[:80])
            continue
        actions.append(
            Action(
                key=key,
                verb=Verb(row["action"]),
                user_id=row["user_id"],
                requested_at=datetime.fromisoformat(row["requested_at"]),
                state=ActionState(row["state"]),
                detail=row["detail"],
                note=row["result"],
                outcome=Outcome.load(row["outcome"]),
            )
        )
    return actions
