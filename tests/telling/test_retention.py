"""Retention as the running bot does it: the leader forgets what ended `RETENTION_DAYS` ago, in
batches, and keeps everything younger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.keys import AlertKey, AlertKind
from bot.core.outcomes import Outcome, OutcomeVerb
from bot.store import Store
from tests.conftest import StartBot

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def settled(store: Store, run_id: str, when: datetime) -> None:
    key = AlertKey(AlertKind.FAILED, run_id)
    await store.claim_alert(key, "C1", when)
    await store.confirm_posted(key, "C1", "1.1", when)
    await store.resolve_alert(key, "C1", Outcome(OutcomeVerb.ARCHIVED), when)


async def test_the_leader_forgets_what_ended_before_retention_days_in_small_batches(
    start_bot: StartBot, tmp_path: Path
) -> None:
    bot = await start_bot(database_url=f"sqlite:///{tmp_path}/r.db", retention_days=30, clock=lambda: NOW)
    bot.retention.batch, bot.retention.pause = 2, 0
    for i in range(5):
        await settled(bot.store, f"OLD{i}", NOW - timedelta(days=31))
    await settled(bot.store, "YOUNG", NOW - timedelta(days=29))
    before = bot.store.statements
    assert await bot.retention.sweep() == 5
    assert bot.store.statements - before >= 4 * 3  # three batches of two or less, then an empty one
    assert [await bot.store.alerts_for_run(f"OLD{i}") for i in range(5)] == [[]] * 5
    assert len(await bot.store.alerts_for_run("YOUNG")) == 1


async def test_a_replica_that_does_not_lead_forgets_nothing(start_bot: StartBot, tmp_path: Path) -> None:
    bot = await start_bot(database_url=f"sqlite:///{tmp_path}/r.db", retention_days=30, clock=lambda: NOW)
    await settled(bot.store, "OLD", NOW - timedelta(days=31))
    bot.retention.is_leader = lambda: False
    assert await bot.retention.sweep() == 0
    assert len(await bot.store.alerts_for_run("OLD")) == 1


def test_retention_days_defaults_to_90_and_refuses_zero() -> None:
    import pytest
    from pydantic import ValidationError

    from bot.config import Settings

    assert Settings(_env_file=None).retention_days == 90
    with pytest.raises(ValidationError):
        Settings(_env_file=None, retention_days=0)
