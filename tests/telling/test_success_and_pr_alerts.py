"""Opt-in `succeeded` and `pr` subscriptions: told once, digested in a storm, never by default."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from tests.conftest import SlackUser, StartBot
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

WINS, OPS = "C0WINS", "C0OPS"


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    started = await start_bot(alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/s.db")
    return started


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


async def subscribe(user: SlackUser, words: str, channel: str) -> str:
    _, _, url = await user.command(f"subscribe {words}", channel=channel)
    return json.dumps(await user.reply(url), ensure_ascii=False)


def texts(slack: FakeSlack, channel: str) -> str:
    return json.dumps([[m.text, m.blocks] for m in slack.posts(channel)], ensure_ascii=False)


def opened(fabro: FakeFabro, run: dict[str, Any], number: int = 42, *, draft: bool = True) -> None:
    """A run's publish step opened a pull request: Fabro links it on the run and logs the flat event."""
    fabro.open_pull_request(run["id"], number, draft=draft, title="Rate limiting for /auth")
    fabro.emit(
        run["id"],
        "pull_request.created",
        {
            "pr_url": f"https://github.com/demo/api/pull/{number}",
            "pr_number": number,
            "owner": "demo",
            "repo": "api",
            "base_branch": "main",
            "head_branch": "fabro/rate-limit",
            "title": "Rate limiting for /auth",
            "draft": draft,
        },
    )


async def test_a_succeeded_subscription_is_told_once_and_the_default_one_never(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    assert "succeeded runs" in await subscribe(user, "succeeded", WINS)
    await subscribe(user, "", OPS)
    await bot.alerter.cycle()  # the first cycle: what came before is history
    run = make_run("running", title="Ship the thing")
    fabro.add(run)
    await bot.alerter.cycle()
    fabro.finish(run["id"])
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    assert slack.alert_keys(WINS) == [f"succeeded:{run['id']}"]
    assert "Run succeeded: Ship the thing" in texts(slack, WINS)
    assert slack.posts(OPS) == [] and slack.violations == []


async def test_a_pr_subscription_posts_the_pull_request_with_what_its_flat_event_says(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    assert "pull requests opened" in await subscribe(user, "pr", WINS)
    await bot.alerter.cycle()
    run = make_run("running", title="Add rate limiting")
    fabro.add(run)
    await bot.alerter.cycle()
    fabro.finish(run["id"])
    await bot.alerter.cycle()
    assert slack.posts(WINS) == []  # success alone is not a pull request
    opened(fabro, run, 42, draft=True)
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    assert slack.alert_keys(WINS) == [f"pr:{run['id']}:42"]
    said = texts(slack, WINS)
    assert "Pull request <https://github.com/demo/api/pull/42|#42> opened for this run" in said
    assert "Rate limiting for /auth" in said and "draft" in said
    assert "`fabro/rate-limit` → `main`" in said
    assert slack.violations == []


async def test_a_linked_pull_request_is_read_from_its_nested_shape(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await subscribe(user, "pr", WINS)
    await bot.alerter.cycle()
    run = make_run("succeeded", title="Linked later")
    fabro.add(run)
    fabro.open_pull_request(run["id"], 9, draft=False)
    link = {"owner": "demo", "repo": "api", "number": 9, "html_url": "https://github.com/demo/api/pull/9"}
    fabro.emit(run["id"], "pull_request.linked", {"pull_request": link})
    await bot.alerter.cycle()
    said = texts(slack, WINS)
    assert "linked to this run" in said and "ready for review" in said
    assert slack.alert_keys(WINS) == [f"pr:{run['id']}:9"]


async def test_a_storm_of_successes_and_pull_requests_is_one_digest(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await subscribe(user, "succeeded pr", WINS)
    await bot.alerter.cycle()
    runs = [make_run("running", title=f"Batch {i}") for i in range(8)]
    fabro.add(*runs)
    await bot.alerter.cycle()
    for i, run in enumerate(runs):
        fabro.finish(run["id"])
        opened(fabro, run, 100 + i)
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    [digest] = slack.posts(WINS)
    assert "16 new alerts" in json.dumps(digest.blocks) and "8 pull requests opened" in json.dumps(digest.blocks)
    assert slack.violations == []


async def test_pull_requests_opened_before_the_bot_started_are_history(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    old = make_run("succeeded", title="Long ago")
    fabro.add(old)
    opened(fabro, old, 5)
    await subscribe(user, "pr succeeded", WINS)
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    assert slack.posts(WINS) == []
