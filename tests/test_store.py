"""The store keeps alerts, subscriptions, watermarks and actions durably, and claims each alert
once. Every test runs against SQLite and against PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from bot.store import Action, AlertState, SQLiteStore, Subscription, open_store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(database_url):
    s = open_store(database_url)
    await s.open()
    yield s
    await s.close()


async def test_an_alert_is_claimed_once_per_channel(store):
    assert await store.claim_alert("failed:R1", "C1", "R1", "failed", NOW) is True
    assert await store.claim_alert("failed:R1", "C1", "R1", "failed", NOW) is False
    assert await store.claim_alert("failed:R1", "C2", "R1", "failed", NOW) is True


async def test_concurrent_claims_have_exactly_one_winner(store):
    results = await asyncio.gather(*[store.claim_alert("failed:R2", "C1", "R2", "failed", NOW) for _ in range(20)])
    assert results.count(True) == 1


async def test_a_claim_moves_to_posted_then_resolved(store):
    await store.claim_alert("approval:R1", "C1", "R1", "approval", NOW)
    assert [a.key for a in await store.alerts_in_state(AlertState.CLAIMED)] == ["approval:R1"]
    await store.confirm_posted("approval:R1", "C1", "1700000000.000100", NOW)
    [alert] = await store.alerts_for_run("R1")
    assert alert.state is AlertState.POSTED and alert.ts == "1700000000.000100"
    await store.resolve_alert("approval:R1", "C1", "Approved", NOW)
    [alert] = await store.alerts_for_run("R1")
    assert alert.state is AlertState.RESOLVED and alert.outcome == "Approved"
    assert await store.alerts_in_state(AlertState.CLAIMED) == []


async def test_a_released_claim_can_be_claimed_again_but_a_posted_one_cannot_be_released(store):
    await store.claim_alert("failed:R1", "C1", "R1", "failed", NOW)
    await store.release_claim("failed:R1", "C1")
    assert await store.claim_alert("failed:R1", "C1", "R1", "failed", NOW) is True
    await store.confirm_posted("failed:R1", "C1", "1.2", NOW)
    await store.release_claim("failed:R1", "C1")
    assert await store.claim_alert("failed:R1", "C1", "R1", "failed", NOW) is False


async def test_seen_history_blocks_a_later_claim(store):
    assert await store.mark_seen("failed:OLD", "C1", "OLD", "failed", NOW) is True
    assert await store.claim_alert("failed:OLD", "C1", "OLD", "failed", NOW) is False


async def test_state_survives_reopening(database_url):
    first = open_store(database_url)
    await first.open()
    await first.claim_alert("failed:R1", "C1", "R1", "failed", NOW)
    sub = await first.add_subscription(Subscription(0, "C9", frozenset({"failed"}), repo="demo/api"))
    await first.set_mark("poll:failed", "2026-11-28T12:00:00Z")
    await first.close()

    second = open_store(database_url)
    await second.open()
    assert await second.claim_alert("failed:R1", "C1", "R1", "failed", NOW) is False
    assert [s.id for s in await second.subscriptions("C9")] == [sub.id]
    assert await second.get_mark("poll:failed") == "2026-11-28T12:00:00Z"
    await second.close()


async def test_subscriptions_are_listed_removed_and_marked_broken_per_channel(store):
    a = await store.add_subscription(Subscription(0, "C1", frozenset({"failed", "questions"}), labels={"team": "core"}))
    b = await store.add_subscription(Subscription(0, "C1", frozenset({"approvals"}), workflow="Implement"))
    await store.add_subscription(Subscription(0, "C2", frozenset({"failed"})))
    [first, second] = await store.subscriptions("C1")
    assert first.kinds == {"failed", "questions"} and first.labels == {"team": "core"}
    assert second.workflow == "Implement"
    assert await store.mark_broken("C1", "not_in_channel") is True
    assert await store.mark_broken("C1", "not_in_channel") is False   # unchanged: nothing to log again
    assert all(s.broken == "not_in_channel" for s in await store.subscriptions("C1"))
    assert (await store.subscriptions("C2"))[0].broken is None
    assert await store.remove_subscriptions("C1", [a.id]) == 1
    assert await store.remove_subscriptions("C2", [b.id]) == 0  # another channel's id is untouched
    assert await store.remove_subscriptions("C1", None) == 1
    assert await store.subscriptions("C1") == []


async def test_an_unknown_database_scheme_is_refused():
    with pytest.raises(ValueError):
        open_store("mysql://localhost/db")


async def test_a_failed_delivery_is_counted_and_scheduled(store):
    await store.claim_alert("failed:R1", "C1", "R1", "failed", NOW)
    later = NOW + timedelta(seconds=30)
    await store.delivery_failed("failed:R1", "C1", error="ratelimited", unposted=True, retry_at=later)
    await store.delivery_failed("failed:R1", "C1", error="timeout", unposted=False, retry_at=later)
    alert = await store.get_alert("failed:R1", "C1")
    assert alert is not None and alert.attempts == 2 and alert.last_error == "timeout"
    assert alert.unposted is False and alert.next_attempt_at == later and alert.state is AlertState.CLAIMED
    await store.confirm_posted("failed:R1", "C1", "1.5", NOW)
    alert = await store.get_alert("failed:R1", "C1")
    assert alert.state is AlertState.POSTED and alert.next_attempt_at is None and alert.last_error is None


async def test_a_batch_and_a_pending_outcome_are_kept(store):
    for key in ("failed:A", "failed:B"):
        await store.claim_alert(key, "C1", key[-1], "failed", NOW)
    await store.assign_batch(["failed:A", "failed:B"], "C1", "digest:1")
    assert {a.batch for a in await store.alerts_in_state(AlertState.CLAIMED)} == {"digest:1"}
    await store.confirm_posted("failed:A", "C1", "1.1", NOW)
    await store.set_outcome("failed:A", "C1", "Archived")
    alert = await store.get_alert("failed:A", "C1")
    assert alert.update_pending and alert.outcome == "Archived"
    await store.resolve_alert("failed:A", "C1", "Archived", NOW)
    assert not (await store.get_alert("failed:A", "C1")).update_pending


async def test_broken_channels_are_set_and_cleared(store):
    await store.mark_broken("C1", "not_in_channel")
    await store.mark_broken("C2", "is_archived")
    assert await store.broken_channels() == {"C1": "not_in_channel", "C2": "is_archived"}
    assert await store.mark_broken("C1", None) is True
    assert await store.mark_broken("C1", None) is False
    assert await store.broken_channels() == {"C2": "is_archived"}


async def test_an_action_is_taken_once_unless_it_failed(store):
    first = Action("retry:R1", "R1", "retry", "U1", NOW)
    assert await store.begin_action(first) is None
    earlier = await store.begin_action(Action("retry:R1", "R1", "retry", "U2", NOW))
    assert earlier is not None and earlier.user_id == "U1" and earlier.state == "pending"
    await store.finish_action("retry:R1", state="failed", result="503")
    assert await store.begin_action(Action("retry:R1", "R1", "retry", "U2", NOW)) is None
    await store.finish_action("retry:R1", state="done", result="new run R2")
    [action] = await store.actions_for_run("R1")
    assert (action.user_id, action.state, action.result) == ("U2", "done", "new run R2")


async def test_concurrent_actions_have_exactly_one_winner(store):
    results = await asyncio.gather(*[store.begin_action(Action("cancel:R9", "R9", "cancel", f"U{i}", NOW)) for i in range(10)])
    assert sum(r is None for r in results) == 1


async def test_a_version_1_sqlite_file_is_migrated_and_keeps_its_data(tmp_path):
    import sqlite3

    from bot.store.sqlite import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute("INSERT INTO subscriptions (channel, kinds, labels, broken) VALUES ('C1', 'failed', '{}', 'not_in_channel')")
    db.execute("INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at) VALUES ('failed:R', 'C1', 'R', 'failed', 'posted', '2026-11-28T12:00:00+00:00')")
    db.commit()
    db.close()
    store = SQLiteStore(str(path))
    await store.open()
    try:
        [sub] = await store.subscriptions("C1")
        assert sub.broken == "not_in_channel"
        alert = await store.get_alert("failed:R", "C1")
        assert alert is not None and alert.attempts == 0 and alert.state is AlertState.POSTED
    finally:
        await store.close()


async def test_replicas_starting_together_migrate_once(postgres_url):
    stores = [open_store(postgres_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert await stores[0].claim_alert("failed:R", "C", "R", "failed", NOW) is True
        assert await stores[1].claim_alert("failed:R", "C", "R", "failed", NOW) is False
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_delivery_lease_keeps_a_second_scheduler_off_until_it_expires(store):
    minutes = lambda n: NOW + timedelta(minutes=n)  # noqa: E731
    await store.claim_alert("failed:R", "C", "R", "failed", NOW, owner="A", lease_until=minutes(2))
    assert await store.take_over("failed:R", "C", owner="B", now=minutes(1), until=minutes(3)) is False
    assert await store.take_over("failed:R", "C", owner="A", now=minutes(1), until=minutes(3)) is True  # renewed
    assert await store.take_over("failed:R", "C", owner="B", now=minutes(2), until=minutes(4)) is False
    assert await store.take_over("failed:R", "C", owner="B", now=minutes(5), until=minutes(7)) is True  # A died
    await store.confirm_posted("failed:R", "C", "1.1", minutes(5))
    await store.resolve_alert("failed:R", "C", "Archived", minutes(6))
    assert await store.take_over("failed:R", "C", owner="B", now=minutes(6), until=minutes(8)) is False  # settled


async def test_only_deliveries_that_are_due_are_read(store):
    for key in ("failed:A", "failed:B", "failed:C", "failed:D"):
        await store.claim_alert(key, "C1", key[-1], "failed", NOW)
    await store.confirm_posted("failed:B", "C1", "1.1", NOW)                 # posted, nothing to edit
    await store.confirm_posted("failed:C", "C1", "1.2", NOW)
    await store.set_outcome("failed:C", "C1", "Archived")                     # posted, edit due
    await store.delivery_failed("failed:D", "C1", error="ratelimited", unposted=True, retry_at=NOW + timedelta(seconds=30))
    assert [a.key for a in await store.deliveries_due(NOW)] == ["failed:A", "failed:C"]
    assert [a.key for a in await store.deliveries_due(NOW + timedelta(seconds=31))] == ["failed:A", "failed:C", "failed:D"]


async def test_cancelling_a_caller_mid_statement_never_closes_the_connection_under_it(tmp_path):
    store = SQLiteStore(str(tmp_path / "cancel.db"))
    await store.open()
    slow = asyncio.create_task(store._fetch(  # noqa: SLF001 - the statement itself is the point
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) SELECT count(*) AS c FROM n"
    ))
    await asyncio.sleep(0.01)
    slow.cancel()
    await asyncio.sleep(0.05)
    # The statement still runs in its thread, so nothing else may touch the connection yet:
    # a second statement in another thread, or close(), would race it (and can crash the process).
    assert store._lock.locked() and not slow.done()  # noqa: SLF001
    await store.close()
    with pytest.raises(asyncio.CancelledError):
        await slow
