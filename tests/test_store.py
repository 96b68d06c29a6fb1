"""The store keeps alerts, subscriptions and watermarks durably, and claims each alert once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from bot.store import AlertState, SQLiteStore, Subscription, open_store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
async def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "state.db"))
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


async def test_state_survives_reopening_the_file(tmp_path):
    path = str(tmp_path / "state.db")
    first = SQLiteStore(path)
    await first.open()
    await first.claim_alert("failed:R1", "C1", "R1", "failed", NOW)
    sub = await first.add_subscription(Subscription(0, "C9", frozenset({"failed"}), repo="demo/api"))
    await first.set_mark("poll:failed", "2026-11-28T12:00:00Z")
    await first.close()

    second = open_store(f"sqlite:///{path}")
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
    await store.mark_broken("C1", "not_in_channel")
    assert all(s.broken == "not_in_channel" for s in await store.subscriptions("C1"))
    assert (await store.subscriptions("C2"))[0].broken is None
    assert await store.remove_subscriptions("C1", [a.id]) == 1
    assert await store.remove_subscriptions("C2", [b.id]) == 0  # another channel's id is untouched
    assert await store.remove_subscriptions("C1", None) == 1
    assert await store.subscriptions("C1") == []


async def test_an_unknown_database_scheme_is_refused():
    with pytest.raises(ValueError):
        open_store("mysql://localhost/db")
