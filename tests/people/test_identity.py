"""Who is who: `/runs link`, `unlink` and `whoami` through signed slash commands, pinned links
from `USER_LINKS`, `USER_LINKING=pinned`, and one holder per login even when people race for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app import Bot
from bot.config import ConfigError, load_settings
from bot.core.query import Link, UsageError, WhoAmI, parse
from bot.core.records import UserLink
from bot.people.identity import Linker, LinkOutcome, parse_user_links
from bot.store import open_store
from tests.conftest import SlackUser, StartBot
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack

ADA, BOB, CAROL = "U123ADA", "U456BOB", "U789CAROL"
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


async def say(user: SlackUser, text: str, who: str = ADA) -> str:
    status, _, url = await user.command(text, user=who)
    assert status == 200
    return str((await user.reply(url))["text"])


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    return await start_bot(database_url=f"sqlite:///{tmp_path}/links.db", user_links="hopper=U789CAROL")


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


async def test_linking_yourself_and_seeing_it(bot: Bot, user: SlackUser) -> None:
    assert "not linked" in await say(user, "whoami")
    assert "Linked" in await say(user, "link @Octocat")
    assert "linked to you already" in await say(user, "link octocat")
    assert "Linked" in await say(user, "link ada-l")
    said = await say(user, "whoami")
    assert "ada-l" in said and "octocat" in said
    assert await bot.linker.user_of("OCTOCAT") == ADA  # logins are GitHub's: case does not matter


async def test_a_login_held_by_someone_else_is_refused_with_who_to_ask(bot: Bot, user: SlackUser) -> None:
    await say(user, "link octocat")
    said = await say(user, "link octocat", who=BOB)
    assert f"<@{ADA}>" in said and "unlink octocat" in said
    assert await bot.linker.user_of("octocat") == ADA
    # Ada lets go of it; now Bob can have it.
    assert "Unlinked 1 login" in await say(user, "unlink octocat")
    assert "Linked" in await say(user, "link octocat", who=BOB)
    assert await bot.linker.user_of("octocat") == BOB


async def test_a_pinned_login_cannot_be_claimed_or_unlinked(bot: Bot, user: SlackUser) -> None:
    said = await say(user, "link hopper")
    assert "pinned" in said and f"<@{CAROL}>" in said
    assert await bot.linker.user_of("hopper") == CAROL
    assert "hopper" in await say(user, "whoami", who=CAROL) and "pinned" in await say(user, "whoami", who=CAROL)
    said = await say(user, "unlink", who=CAROL)
    assert "still yours" in said and "hopper" in said
    assert await bot.linker.user_of("hopper") == CAROL


async def test_the_bots_own_login_is_never_linkable(bot: Bot, user: SlackUser) -> None:
    assert "cannot be linked" in await say(user, "link dev")
    assert await bot.linker.user_of("dev") is None


async def test_bad_logins_get_a_kind_usage_error(user: SlackUser) -> None:
    status, ack, _ = await user.command("link not_a_login!")
    assert status == 200 and "is not a GitHub login" in ack and "/runs link octocat" in ack


async def test_pinned_mode_turns_self_linking_off(start_bot: StartBot, slack: FakeSlack, tmp_path: Path) -> None:
    bot = await start_bot(
        database_url=f"sqlite:///{tmp_path}/pinned.db", user_links="hopper=U789CAROL", user_linking="pinned"
    )
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        assert "set by an admin" in await say(user, "link octocat")
        assert await bot.store.links() == []
        assert await bot.linker.user_of("hopper") == CAROL


async def test_links_survive_a_restart(start_bot: StartBot, slack: FakeSlack, fabro: FakeFabro, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kept.db"
    first = await start_bot(database_url=url)
    async with aiohttp.ClientSession() as session:
        await say(SlackUser.of(first, slack, session), "link octocat")
    await first.stop()
    second = await start_bot(database_url=url)
    assert await second.linker.user_of("octocat") == ADA


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_two_people_racing_for_one_login_one_gets_it(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/race.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    store = open_store(url)
    await store.open()
    try:
        linkers = [Linker(store, lambda: NOW, {}) for _ in range(2)]
        for round_ in range(10):
            login = f"contested-{round_}"
            results = await asyncio.gather(linkers[0].link(login, ADA), linkers[1].link(login, BOB))
            outcomes = sorted(r.outcome for r in results)
            assert outcomes == sorted([LinkOutcome.LINKED, LinkOutcome.TAKEN]), results
            [held] = await store.links(login=login)
            winner = next(r for r in results if r.outcome is LinkOutcome.LINKED)
            loser = next(r for r in results if r.outcome is LinkOutcome.TAKEN)
            assert loser.holder == held.user_id and winner.holder in (None, held.user_id)
        assert await store.add_link(UserLink("contested-0", CAROL, NOW)) in (ADA, BOB)
        assert await store.remove_links(CAROL) == 0
    finally:
        await store.close()


def test_user_links_setting_is_checked() -> None:
    assert parse_user_links(" Hopper=U789CAROL , ada=U123ADA,") == {"hopper": CAROL, "ada": ADA}
    with pytest.raises(ValueError, match="not a person's"):
        parse_user_links("dev=U123ADA")
    with pytest.raises(ValueError, match="two people"):
        parse_user_links("hopper=U1AA,hopper=U2BB")
    with pytest.raises(ConfigError, match="USER_LINKS") as caught:
        load_settings("preview", env_file=None, fabro_api_url="http://f", fabro_api_token="t", user_links="@ada")
    assert "login=U" in str(caught.value)
    with pytest.raises(ConfigError, match="USER_LINKING"):
        load_settings("preview", env_file=None, fabro_api_url="http://f", fabro_api_token="t", user_linking="everyone")


def test_link_grammar() -> None:
    assert parse("link Octocat") == Link("octocat")
    assert parse("unlink") == Link(None, unlink=True)
    assert parse("unlink octocat") == Link("octocat", unlink=True)
    assert parse("whoami") == WhoAmI()
    assert parse("link") == Link(None)  # alone: sign in with GitHub
    for bad in ("link a b", "link -x", "link a--b", "whoami please", "link " + "a" * 40):
        assert isinstance(parse(bad), UsageError), bad


@given(st.text(max_size=60))
def test_any_link_words_parse_without_error(word: str) -> None:
    parsed = parse(f"link {word}")
    assert isinstance(parsed, Link | UsageError)
    if isinstance(parsed, Link) and parsed.login is not None:
        assert parsed.login == parsed.login.lower() and len(parsed.login) <= 39
    elif isinstance(parsed, Link):
        assert not word.strip()  # only `link` alone asks for GitHub's sign-in


def test_notify_grammar() -> None:
    from bot.core.query import Notify

    assert parse("notify") == Notify()
    assert parse("notify off") == Notify(frozenset())
    assert parse("notify Failures question approvals") == Notify(frozenset({"failed", "questions", "approvals"}))
    assert parse("notify failed Success") == Notify(frozenset({"failed", "succeeded"}))
    error = parse("notify faild")
    assert isinstance(error, UsageError) and error.suggestion == "failed"
