"""DAILY_BUDGET_USD: once the day's spend (from the run index) crosses it, one alert that day, exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.app import Bot
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack, dm_of
from tests.telling.test_cost_alerts import ADA, COSTS, OPS, command, spend
from tests.telling.test_reminders import by_octocat


async def start(start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, **settings: Any) -> Bot:
    values: dict[str, Any] = {
        "alert_channel": OPS,
        "daily_budget_usd": 20,
        "database_url": f"sqlite:///{tmp_path}/budget.db",
        **settings,
    }
    bot = await start_bot(alert_pace=0.0, **{k: v for k, v in values.items() if v is not None})
    await bot.alerter.cycle()
    return bot


def budget_posts(slack: FakeSlack, channel: str) -> list[str]:
    return [k for k in slack.alert_keys(channel) if k.startswith("budget:")]


async def test_the_days_spend_crossing_the_budget_is_told_once_that_day_even_across_a_restart(
    start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start(start_bot, tmp_path)
    await command(bot, slack, "subscribe cost", channel=COSTS)
    runs = [by_octocat(title=f"Spender {i}") for i in range(3)]
    fabro.add(*runs)
    spend(fabro, runs[0], 8.0)
    spend(fabro, runs[1], 7.0)
    await bot.alerter.cycle()
    assert budget_posts(slack, COSTS) == []  # $15 of $20
    spend(fabro, runs[2], 9.5)
    await bot.alerter.cycle()
    [key] = budget_posts(slack, COSTS)
    said = json.dumps([m.blocks for m in slack.posts(COSTS)], ensure_ascii=False)
    assert "runs have cost $24.50 so far, over the daily budget of $20.00" in said
    assert said.index("Spender 2") < said.index("Spender 0") < said.index("Spender 1")  # costliest first
    spend(fabro, runs[2], 30.0)
    await bot.alerter.cycle()
    await bot.stop()
    again = await start(start_bot, tmp_path)
    spend(fabro, runs[1], 12.0)
    await again.alerter.cycle()
    assert budget_posts(slack, COSTS) == [key]
    assert budget_posts(slack, OPS) == []  # only where `cost` was asked for
    assert slack.violations == []


async def test_without_a_daily_budget_nothing_is_told(
    start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start(start_bot, tmp_path, daily_budget_usd=None)
    await command(bot, slack, "subscribe cost", channel=COSTS)
    run = by_octocat(title="Spender")
    fabro.add(run)
    spend(fabro, run, 500.0)
    await bot.alerter.cycle()
    assert budget_posts(slack, COSTS) == []


async def test_on_postgresql_two_replicas_and_a_restart_tell_each_cost_and_the_day_once(
    start_bot: Callable[..., Awaitable[Bot]], postgres_url: str, fabro: FakeFabro, slack: FakeSlack
) -> None:
    settings: dict[str, Any] = {
        "alert_pace": 0.0,
        "alert_channel": OPS,
        "cost_alert_usd": 10,
        "daily_budget_usd": 20,
        "user_links": "octocat=U123ADA",
        "database_url": postgres_url,
    }
    first, second = await start_bot(**settings), await start_bot(**settings)
    await first.alerter.cycle()
    await command(first, slack, "subscribe cost", channel=COSTS)
    await command(second, slack, "notify questions cost", user=ADA)
    runs = [by_octocat(title=f"Spender {i}") for i in range(2)]
    fabro.add(*runs)
    spend(fabro, runs[0], 12.0)
    spend(fabro, runs[1], 9.0)
    await asyncio.gather(first.alerter.cycle(), second.alerter.cycle())  # both replicas decide at once
    spend(fabro, runs[0], 13.0)
    await asyncio.gather(first.alerter.cycle(), second.alerter.cycle())
    await first.stop()
    third = await start_bot(**settings)  # the first replica, restarted
    spend(fabro, runs[1], 11.0)
    await asyncio.gather(second.alerter.cycle(), third.alerter.cycle())
    await asyncio.gather(second.alerter.cycle(), third.alerter.cycle())
    day = datetime.now(UTC).date().isoformat()
    costs = sorted(f"cost:{r['id']}" for r in runs)
    assert sorted(slack.alert_keys(COSTS)) == sorted([f"budget:{day}", *costs])
    assert sorted(slack.alert_keys(dm_of(ADA))) == costs  # the owner asked for cost; the budget is the channel's
    assert slack.posts(OPS) == []
    assert slack.violations == []


async def test_a_channel_shared_outside_hears_the_budget_and_a_costly_run_without_any_amount(
    start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    slack.external.add(COSTS)  # shared with another organisation (EXTERNAL_CHANNELS=minimal, the default)
    bot = await start(start_bot, tmp_path, cost_alert_usd=10)
    await command(bot, slack, "subscribe cost", channel=COSTS)
    run = by_octocat(title="Spender abroad")
    fabro.add(run)
    fabro.bill(run["id"], [("implement", "claude-opus", 25_000_000, 40_000)])
    spend(fabro, run, 25.0)
    await bot.alerter.cycle()
    day = datetime.now(UTC).date().isoformat()
    assert sorted(slack.alert_keys(COSTS)) == sorted([f"budget:{day}", f"cost:{run['id']}"])
    said = json.dumps([[m.text, m.blocks] for m in slack.posts(COSTS)], ensure_ascii=False)
    assert "more than the daily budget" in said and "Spender abroad" in said  # the run's title and link only
    assert "$" not in said and "claude-opus" not in said and "implement" not in said
    assert slack.violations == []
