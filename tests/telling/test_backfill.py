"""The run index is filled from Fabro in the background on first start and after an outage: bounded pages."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import Bot
from bot.store.sqlite import SQLiteStore
from bot.telling.backfill import BACKFILLED, POLLED
from tests.conftest import SlackUser, wait_for, wait_until
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run, user_principal
from tests.fakes.slack import FakeSlack

ADA = "U123ADA"


def by_octocat(**run: Any) -> dict[str, Any]:
    created_by = user_principal("octocat")
    return make_run("succeeded", created_by=created_by, **run)


def backfill_reads(fabro: FakeFabro) -> int:
    """Pages read from the newest run on, 100 at a time (the poller's first page is 20)."""
    reads = 0
    for call in fabro.calls("/api/v1/runs"):
        query = dict(call.query)
        whole = "status" not in query and query.get("sort") == "updated_at" and query.get("page[limit]") == "100"
        reads += whole and int(query.get("page[offset]", "1")) % 100 == 0  # the poller's pages start at 20
    return reads


async def start(start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, **settings: Any) -> Bot:
    return await start_bot(
        schedule_alerts=True,
        alert_pace=0.0,
        poll_interval_seconds=1,
        user_links="octocat=U123ADA",
        database_url=f"sqlite:///{tmp_path}/backfill.db",
        index_backfill_pages=2,
        **settings,
    )


async def mine(bot: Bot, slack: FakeSlack) -> str:
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, url = await user.command("mine done", user=ADA)
        return json.dumps(await user.reply(url), ensure_ascii=False)


async def test_runs_older_than_the_bot_reach_the_index_a_bounded_number_of_pages(
    start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    fabro.add(*[by_octocat(title=f"Old {i:03d}", created=old + timedelta(minutes=i)) for i in range(250)])
    bot = await start(start_bot, tmp_path)
    await wait_until(lambda: bot.store.get_mark(BACKFILLED), timeout=10)
    assert backfill_reads(fabro) == 2  # two pages of 100, whatever Fabro holds
    said = await mine(bot, slack)
    assert "200 match" in said and "Old 249" in said


async def test_a_restart_soon_after_does_not_read_again_but_one_after_an_outage_does(
    start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add(*[by_octocat(title=f"Old {i}") for i in range(5)])
    first = await start(start_bot, tmp_path)
    await wait_until(lambda: first.store.get_mark(BACKFILLED), timeout=10)
    await wait_until(lambda: first.store.get_mark(POLLED), timeout=10)
    await first.stop()
    reads = backfill_reads(fabro)
    second = await start(start_bot, tmp_path)
    await wait_until(lambda: second.store.get_mark(POLLED), timeout=10)
    assert backfill_reads(fabro) == reads  # down for a moment: the poller catches up by itself
    await second.stop()
    store = SQLiteStore(f"{tmp_path}/backfill.db")  # the bot was down for two hours
    await store.open()
    await store.set_mark(POLLED, (datetime.now(UTC) - timedelta(hours=2)).isoformat())
    await store.close()
    third = await start(start_bot, tmp_path)
    await wait_for(lambda: backfill_reads(fabro) > reads, timeout=10)
    assert "5 match" in await mine(third, slack)
