"""COST_ALERT_USD: a run whose cost crosses it is told once (kind `cost`, opt-in), with its cost per stage."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import Bot
from tests.conftest import SlackUser
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack, dm_of
from tests.telling.test_reminders import by_octocat

COSTS, OPS = "C0COSTS", "C0OPS"
ADA = "U123ADA"


async def start(start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, **settings: Any) -> Bot:
    values: dict[str, Any] = {
        "alert_channel": OPS,
        "cost_alert_usd": 10,
        "user_links": "octocat=U123ADA",
        "database_url": f"sqlite:///{tmp_path}/cost.db",
        **settings,
    }
    bot = await start_bot(alert_pace=0.0, **{k: v for k, v in values.items() if v is not None})
    await bot.alerter.cycle()
    return bot


def spend(fabro: FakeFabro, run: dict[str, Any], usd: float) -> None:
    run["billing"] = {"total_usd_micros": int(usd * 1_000_000)}
    fabro.emit(run["id"], "stage.completed", {"index": 0, "status": "succeeded", "attempt": 1, "max_attempts": 1})


async def command(bot: Bot, slack: FakeSlack, words: str, **kw: Any) -> str:
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, url = await user.command(words, **kw)
        return json.dumps(await user.reply(url), ensure_ascii=False)


async def test_a_run_over_the_cost_alert_is_told_once_where_asked_with_its_stages(
    start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start(start_bot, tmp_path)
    assert "runs over the cost alert" in await command(bot, slack, "subscribe cost", channel=COSTS)
    assert "cost" in await command(bot, slack, "notify questions approvals failed cost", user=ADA)
    run = by_octocat(title="Pricey run")
    fabro.add(run)
    fabro.bill(
        run["id"], [("plan", "claude-sonnet", 1_500_000, 9_000), ("implement", "claude-opus", 11_000_000, 40_000)]
    )
    spend(fabro, run, 8.0)
    await bot.alerter.cycle()
    assert slack.posts(COSTS) == []  # under the line
    spend(fabro, run, 12.5)
    await bot.alerter.cycle()
    spend(fabro, run, 14.0)
    await bot.alerter.cycle()
    assert slack.alert_keys(COSTS) == [f"cost:{run['id']}"]
    said = json.dumps([m.blocks for m in slack.posts(COSTS)], ensure_ascii=False)
    assert "has cost $12.50, over the $10.00 alert" in said and "implement" in said and "plan" in said
    assert slack.alert_keys(dm_of(ADA)) == [f"cost:{run['id']}"]  # the owner asked for it too
    assert slack.posts(OPS) == []  # not in the default kinds
    assert slack.violations == []


async def test_a_cost_alert_is_not_posted_again_after_a_restart(
    start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start(start_bot, tmp_path)
    await command(bot, slack, "subscribe cost", channel=COSTS)
    run = by_octocat(title="Pricey run")
    fabro.add(run)
    spend(fabro, run, 20.0)
    await bot.alerter.cycle()
    await bot.stop()
    again = await start(start_bot, tmp_path)
    spend(fabro, run, 25.0)
    await again.alerter.cycle()
    assert slack.alert_keys(COSTS) == [f"cost:{run['id']}"]


async def test_without_cost_alert_usd_nothing_is_told(
    start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start(start_bot, tmp_path, cost_alert_usd=None)
    await command(bot, slack, "subscribe cost", channel=COSTS)
    run = by_octocat(title="Pricey run")
    fabro.add(run)
    spend(fabro, run, 500.0)
    await bot.alerter.cycle()
    assert slack.posts(COSTS) == []
