"""Nothing already waiting is missed: a new subscription is told what waits, once; Home reads every page."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from tests.acting.test_steering import question
from tests.conftest import SlackUser, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

NEW, LATER = "C0NEW", "C0LATER"
ADA = "U123ADA"


@pytest.fixture
async def bot(start_bot: Callable[..., Awaitable[Bot]], tmp_path: Path) -> Bot:
    return await start_bot(alert_pace=0.0, user_links="octocat=U123ADA", database_url=f"sqlite:///{tmp_path}/n.db")


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def waiting_question(fabro: FakeFabro, title: str, **run: Any) -> dict[str, Any]:
    made = make_run("running", title=title, **run)
    fabro.add(made)
    fabro.ask(made["id"], question("yes_no"))
    return made


def waiting_approval(fabro: FakeFabro, title: str) -> dict[str, Any]:
    made = make_run("running", title=title)
    fabro.add(made)
    fabro.request_approval(made["id"])
    return made


async def moved_on(bot: Bot, fabro: FakeFabro) -> None:
    """Something newer happens in Fabro, so what waits is behind the bot's watermark (not re-read each cycle)."""
    last = max(datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) for log in fabro.events.values() for e in log)
    await wait_for(lambda: datetime.now(UTC) > last + timedelta(milliseconds=1))  # a later millisecond than any event
    newer = make_run("running", title="Something newer")
    fabro.add(newer)
    fabro.emit(newer["id"], "run.title.updated", {"title": "Something newer"})
    await bot.alerter.cycle()


async def subscribe(user: SlackUser, words: str, channel: str) -> str:
    _, _, url = await user.command(f"subscribe {words}", channel=channel)
    return json.dumps(await user.reply(url), ensure_ascii=False)


async def test_a_new_subscription_is_told_once_what_already_waits_that_it_matches(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await bot.alerter.cycle()  # the bot has been running a while
    asks = waiting_question(fabro, "Asks before")
    approves = waiting_approval(fabro, "Waits for approval")
    elsewhere = waiting_question(
        fabro, "Other repo", repository={"name": "acme/other", "origin_url": None, "provider": "git"}
    )
    await bot.alerter.cycle()  # nobody subscribed yet: nothing posted
    await moved_on(bot, fabro)
    assert slack.posts(NEW) == []
    said = await subscribe(user, "questions approvals repo:demo/api-server", NEW)
    assert "What already waits here is posted in a moment" in said
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    keys = sorted(slack.alert_keys(NEW))
    assert keys == sorted([f"question:{asks['id']}:q-1", f"approval:{approves['id']}"])
    assert not any(elsewhere["id"] in k for k in keys)
    await subscribe(user, "questions", LATER)  # another channel, later: told too, once
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    assert sorted(slack.alert_keys(LATER)) == sorted([f"question:{asks['id']}:q-1", f"question:{elsewhere['id']}:q-1"])
    assert len(slack.posts(NEW)) == 2 and slack.violations == []


async def test_many_things_waiting_reach_a_new_subscription_as_one_digest(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await bot.alerter.cycle()
    for i in range(12):
        waiting_question(fabro, f"Waiting {i:02d}")
    await bot.alerter.cycle()
    await moved_on(bot, fabro)
    await subscribe(user, "questions", NEW)
    await bot.alerter.cycle()
    [digest] = slack.posts(NEW)
    assert "12 questions waiting" in json.dumps(digest.blocks)
    await bot.alerter.cycle()
    assert len(slack.posts(NEW)) == 1


async def test_home_reads_every_page_of_waiting_runs_and_says_exactly_how_many_more(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    for i in range(130):
        waiting_question(fabro, f"Q {i:03d}")
    status, _ = await user.open_home(ADA)
    assert status == 200
    await wait_for(lambda: ADA in slack.homes)
    view = json.dumps(slack.homes[ADA]["blocks"], ensure_ascii=False)
    assert "… and 122 more" in view  # 130 waiting, 8 shown
    offsets = [dict(c.query).get("page[offset]") for c in fabro.calls("/api/v1/runs")]
    assert "100" in offsets
