"""Verified identity: `USER_LINKING=github|pinned|self`, GitHub's device flow against a fake GitHub
serving real HTTP, the token discarded, and the login of the bot's own Fabro token never linkable."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.config import Settings
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.github import FakeGitHub
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack, dm_of

GRACE, MALLORY = "U0GRACE", "U0MALLORY"
# What the `people` fixture gives: `await people(**settings)` is a started bot and a person at it.
People = Callable[..., Awaitable[tuple[Bot, SlackUser]]]


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    server = await FakeGitHub().start()
    yield server
    await server.stop()


@pytest.fixture
async def people(start_bot: StartBot, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[People]:
    async with aiohttp.ClientSession() as session:

        async def start(**settings: Any) -> tuple[Bot, SlackUser]:
            bot: Bot = await start_bot(database_url=f"sqlite:///{tmp_path}/who.db", **settings)
            return bot, SlackUser.of(bot, slack, session)

        yield start


def with_github(github: FakeGitHub) -> dict[str, Any]:
    return {
        "user_linking": None,  # the default: github, because a client id is set
        "github_client_id": github.client_id,
        "github_url": github.url,
        "github_api_url": github.url,
    }


async def say(user: SlackUser, text: str, who: str = GRACE) -> str:
    _, _, url = await user.command(text, user=who)
    return str((await user.reply(url))["text"])


def test_the_mode_defaults_to_github_with_a_client_id_and_to_pinned_without() -> None:
    assert Settings(_env_file=None).link_mode == "pinned"
    assert Settings(_env_file=None, github_client_id="Iv1.abc123").link_mode == "github"
    assert Settings(_env_file=None, user_linking="self").link_mode == "self"


async def test_by_default_nobody_can_claim_someone_elses_login_by_typing_it(people: People) -> None:
    bot, user = await people(user_linking=None)
    said = await say(user, "link grace", who=MALLORY)
    assert "Links are set by an admin here" in said
    assert await bot.linker.user_of("grace") is None


async def test_signing_in_with_github_links_the_login_github_names_and_keeps_no_token(
    people: People, github: FakeGitHub, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    github.pending_polls, github.slow_down_once = 1, True
    bot, user = await people(**with_github(github))
    said = await say(user, "link grace-h", who=MALLORY)  # a typed login is never taken in github mode
    assert "not taken as typed" in said and await bot.linker.user_of("grace-h") is None
    said = await say(user, "link")
    assert f"{github.url}/login/device" in said and "enter the code" in said
    await wait_for(lambda: slack.posts(dm_of(GRACE)), timeout=15)
    assert "GitHub says you are `grace-h`" in slack.posts(dm_of(GRACE))[0].text
    assert await bot.linker.user_of("grace-h") == GRACE
    # GitHub's pacing is honoured: never sooner than the interval, and 5 s more after slow_down.
    gaps = [b - a for a, b in zip(github.polls, github.polls[1:], strict=False)]
    assert github.too_fast == 0 and gaps[0] >= 5.9
    [token] = github.tokens_issued
    assert github.user_requests[0]["Authorization"] == f"Bearer {token}"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("who.db*"))
    assert token.encode() not in stored and token not in caplog.text


async def test_a_declined_sign_in_links_nothing_and_says_so(
    people: People, github: FakeGitHub, slack: FakeSlack
) -> None:
    github.outcome, github.pending_polls = "denied", 0
    bot, user = await people(**with_github(github))
    await say(user, "link")
    await wait_for(lambda: slack.posts(dm_of(GRACE)), timeout=10)
    assert "declined" in slack.posts(dm_of(GRACE))[0].text
    assert await bot.linker.logins_of(GRACE) == ([], [])


async def test_the_tokens_own_login_from_fabro_is_never_linkable(
    people: People, github: FakeGitHub, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.auth_me_login = "Robot-Account"
    github.login, github.pending_polls = "robot-account", 0
    bot, user = await people(**with_github(github))
    await say(user, "link")
    await wait_for(lambda: slack.posts(dm_of(GRACE)), timeout=10)
    assert "login of this bot's Fabro token" in slack.posts(dm_of(GRACE))[0].text
    assert await bot.linker.user_of("robot-account") is None


async def test_without_auth_me_the_tokens_login_is_learned_from_the_first_run_the_bot_creates(
    people: People, fabro: FakeFabro
) -> None:
    bot, user = await people(user_linking="self")
    assert "Linked" in await say(user, "link fabro-bot", who=MALLORY)  # not known yet to be the bot's
    run = make_run("failed", title="Flaky")
    fabro.add(run)
    _, _, url = await user.command(run["id"])
    card = await user.reply(url)
    [(block_id, button)] = [
        (b["block_id"], e)
        for b in card["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "steer:retry"
    ]
    await user.click({"action_id": "steer:retry", "value": button.get("value")}, block_id=block_id)
    await wait_for(lambda: fabro.calls(f"/api/v1/runs/{run['id']}/retry", method="POST"))
    await wait_for(lambda: "fabro-bot" in bot.linker.reserved)
    assert await bot.linker.user_of("fabro-bot") is None  # its runs are nobody's, whoever claimed it
    assert "login of this bot's Fabro token" in await say(user, "link fabro-bot")


async def test_a_login_once_typed_counts_for_nothing_in_github_mode_and_gives_way_to_githubs_word(
    people: People, github: FakeGitHub, slack: FakeSlack, tmp_path: Path
) -> None:
    from bot.core.records import UserLink
    from bot.store import open_store

    earlier = open_store(f"sqlite:///{tmp_path}/who.db")  # a link typed under USER_LINKING=self
    await earlier.open()
    from datetime import UTC, datetime

    await earlier.add_link(UserLink("grace-h", MALLORY, datetime.now(UTC)))
    await earlier.close()
    github.pending_polls = 0
    bot, user = await people(**with_github(github))
    assert await bot.linker.user_of("grace-h") is None  # typed, never proven: not Mallory's
    await say(user, "link")
    await wait_for(lambda: slack.posts(dm_of(GRACE)), timeout=10)
    assert await bot.linker.user_of("grace-h") == GRACE
