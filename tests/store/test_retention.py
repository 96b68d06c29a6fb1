"""What the store forgets, and what each cycle reads: retention deletes only what nothing needs, in
small batches, and the queries every cycle runs use indexes that keep them constant as history
grows. Every test runs against SQLite and against PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.keys import ActionKey, ActionScope, ActionState, AlertKey, AlertKind, Verb
from bot.core.outcomes import Outcome, OutcomeVerb
from bot.core.records import Action, Follow, IndexedRun
from bot.store import Store, open_store
from bot.store.sql import DELIVERIES_DUE, WAITING_ALERTS

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=120)
CUTOFF = NOW - timedelta(days=90)
ARCHIVED = Outcome(OutcomeVerb.ARCHIVED)


async def settled(store: Store, run_id: str, when: datetime, kind: AlertKind = AlertKind.FAILED) -> AlertKey:
    key = AlertKey(kind, run_id)
    await store.claim_alert(key, "C1", when)
    await store.confirm_posted(key, "C1", f"{when.timestamp():.6f}", when)
    await store.resolve_alert(key, "C1", ARCHIVED, when)
    return key


async def indexed(store: Store, run_id: str, status: str, when: datetime) -> None:
    await store.index_run(IndexedRun(run_id, "U1", "ada", status, "a run", None, when))


async def forget_all(store: Store) -> int:
    total = 0
    while gone := await store.forget(CUTOFF, batch=2):
        total += gone
    return total


async def test_settled_alerts_of_runs_that_ended_long_ago_are_forgotten_and_new_ones_kept(store: Store) -> None:
    await settled(store, "OLD1", LONG_AGO)
    await settled(store, "OLD2", LONG_AGO)
    await settled(store, "NEW", NOW - timedelta(days=10))
    assert await forget_all(store) == 2
    assert await store.alerts_for_run("OLD1") == [] and await store.alerts_for_run("OLD2") == []
    assert len(await store.alerts_for_run("NEW")) == 1


async def test_nothing_pending_waiting_or_followed_is_forgotten_however_old(store: Store) -> None:
    await store.claim_alert(AlertKey(AlertKind.FAILED, "CLAIMED"), "C1", LONG_AGO)  # never confirmed
    question = AlertKey(AlertKind.QUESTION, "ASKING", "q1")
    await store.claim_alert(question, "C1", LONG_AGO)
    await store.confirm_posted(question, "C1", "1.1", LONG_AGO)  # still waiting for an answer
    edit = AlertKey(AlertKind.FAILED, "EDITING")
    await store.claim_alert(edit, "C1", LONG_AGO)
    await store.confirm_posted(edit, "C1", "1.2", LONG_AGO)
    await store.set_outcome(edit, "C1", ARCHIVED)  # an edit still to make
    await settled(store, "FOLLOWED", LONG_AGO)
    await store.add_follow(Follow("FOLLOWED", "C1", "1.3", "U1", LONG_AGO))
    # A reminder's once-key under a waiting question is kept with it: it is never posted twice.
    reminder = AlertKey(AlertKind.UPDATE, "ASKING", "remind-q1")
    await store.claim_alert(reminder, "C1", LONG_AGO)
    await store.confirm_posted(reminder, "C1", "1.4", LONG_AGO)

    assert await forget_all(store) == 0
    for run_id in ("CLAIMED", "EDITING", "FOLLOWED"):
        assert len(await store.alerts_for_run(run_id)) == 1
    assert len(await store.alerts_for_run("ASKING")) == 2
    assert len(await store.follows("FOLLOWED")) == 1


async def test_a_run_with_one_recent_alert_keeps_all_its_alerts(store: Store) -> None:
    await settled(store, "MIXED", LONG_AGO)
    await settled(store, "MIXED", NOW - timedelta(days=1), kind=AlertKind.SUCCEEDED)
    assert await forget_all(store) == 0
    assert len(await store.alerts_for_run("MIXED")) == 2


async def test_settled_actions_go_after_their_runs_alerts_and_pending_ones_stay(store: Store) -> None:
    def action(run_id: str, scope: ActionScope) -> Action:
        return Action(ActionKey(scope, run_id), Verb.RETRY, "U1", LONG_AGO)

    for run_id in ("DONE", "PENDING", "ALERTED"):
        await store.begin_action(action(run_id, ActionScope.RETRY), stale_before=LONG_AGO)
    await store.finish_action(ActionKey(ActionScope.RETRY, "DONE"), state=ActionState.DONE)
    await store.finish_action(ActionKey(ActionScope.RETRY, "ALERTED"), state=ActionState.DONE)
    await settled(store, "ALERTED", NOW)  # its alert is recent: the action still tells who acted
    await forget_all(store)
    assert await store.actions_for_run("DONE") == []
    assert len(await store.actions_for_run("PENDING")) == 1
    assert len(await store.actions_for_run("ALERTED")) == 1


async def test_index_entries_and_follows_of_runs_that_ended_long_ago_are_forgotten(store: Store) -> None:
    await indexed(store, "ENDED", "succeeded", LONG_AGO)
    await indexed(store, "FAILED_FOLLOWED", "failed", LONG_AGO)
    await store.add_follow(Follow("FAILED_FOLLOWED", "C1", "1.5", "U1", LONG_AGO))
    await indexed(store, "RUNNING", "running", LONG_AGO)  # not ended: never forgotten
    await indexed(store, "RECENT", "succeeded", NOW)
    await forget_all(store)
    assert await store.indexed_run("ENDED") is None
    assert await store.indexed_run("FAILED_FOLLOWED") is None and await store.follows("FAILED_FOLLOWED") == []
    assert await store.indexed_run("RUNNING") is not None
    assert await store.indexed_run("RECENT") is not None


async def test_a_follow_ended_long_ago_is_forgotten_and_one_ended_lately_kept_for_a_resume(store: Store) -> None:
    """Retention forgets an ended follow once it has been ended longer than the cutoff, whatever the
    run index says (a run resumed elsewhere may be at work again); a recent one waits for a resume."""
    await indexed(store, "RESUMED_ELSEWHERE", "running", NOW)
    await store.add_follow(Follow("RESUMED_ELSEWHERE", "C1", "1.6", "U1", LONG_AGO))
    await store.end_follow("RESUMED_ELSEWHERE", "C1", LONG_AGO)
    await store.add_follow(Follow("ENDED_LATELY", "C1", "1.7", "U1", LONG_AGO))
    await store.end_follow("ENDED_LATELY", "C1", NOW - timedelta(days=1))
    assert await forget_all(store) == 1
    assert await store.ended_follows("RESUMED_ELSEWHERE") == []
    assert [f.ts for f in await store.ended_follows("ENDED_LATELY")] == ["1.7"]


async def test_one_call_deletes_a_small_batch_only(store: Store) -> None:
    for i in range(7):
        await settled(store, f"R{i}", LONG_AGO + timedelta(minutes=i))
    assert await store.forget(CUTOFF, batch=3) == 3
    assert await store.forget(CUTOFF, batch=3) == 3
    assert await store.forget(CUTOFF, batch=3) == 1
    assert await store.forget(CUTOFF, batch=3) == 0


async def test_the_store_counts_every_statement_it_sends(store: Store) -> None:
    before = store.statements
    await store.get_mark("x")
    await store.set_mark("x", "1")
    await store.deliveries_due(NOW)
    assert store.statements - before == 3


# -- the plans of the queries every cycle runs ------------------------------------------------------

PER_CYCLE = {
    "deliveries due": (DELIVERIES_DUE, ("2026-11-28T12:00:00.000000+00:00",), "alerts_due"),
    "alerts still waiting": (WAITING_ALERTS, (), "alerts_waiting"),
    "alerts of one run": ("SELECT * FROM alerts WHERE run_id = ? ORDER BY claimed_at, key", ("R1",), "alerts_by_run"),
    "actions of one run": ("SELECT * FROM actions WHERE run_id = ?", ("R1",), "actions_by_run"),
}


async def fill_history(store: Store, n: int = 300) -> None:
    for i in range(n):
        await settled(store, f"H{i}", LONG_AGO + timedelta(minutes=i))


@pytest.mark.parametrize("query", sorted(PER_CYCLE))
async def test_each_per_cycle_query_uses_its_index_on_sqlite(tmp_path: Path, query: str) -> None:
    store = open_store(f"sqlite:///{tmp_path}/plans.db")
    await store.open()
    try:
        await fill_history(store)
    finally:
        await store.close()
    sql, params, index = PER_CYCLE[query]
    db = sqlite3.connect(tmp_path / "plans.db")
    try:
        # The bot never runs ANALYZE on SQLite; the planner's choice is read as the bot meets it.
        plan = " | ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
    finally:
        db.close()
    assert f"INDEX {index}" in plan, plan
    assert "SCAN alerts" not in plan.replace(f"SCAN alerts USING INDEX {index}", ""), plan


@pytest.mark.parametrize("query", sorted(PER_CYCLE))
async def test_each_per_cycle_query_uses_its_index_on_postgresql(postgres_url: str, query: str) -> None:
    import psycopg

    store = open_store(postgres_url)
    await store.open()
    try:
        await fill_history(store)
    finally:
        await store.close()
    sql, params, index = PER_CYCLE[query]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        # A table this small is cheaper to read whole; forbidding that shows the index can serve it.
        conn.execute("SET enable_seqscan = off")
        plan = " | ".join(row[0] for row in conn.execute("EXPLAIN " + sql.replace("?", "%s"), params))
    assert index in plan, plan
