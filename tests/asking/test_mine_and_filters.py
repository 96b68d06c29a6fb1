"""`/runs mine`, `by:`/`by:me` and the exclusions, through signed requests against the fake Fabro."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.core.records import IndexedRun
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run, user_principal
from tests.fakes.slack import FakeSlack

ADA, BOB = "U123ADA", "U456BOB"


def by(login: str, kind: str = "running", **run: Any) -> dict[str, Any]:
    created_by = user_principal(login)
    return make_run(kind, created_by=created_by, **run)


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    started = await start_bot(alert_pace=0.0, user_links="octocat=U123ADA", database_url=f"sqlite:///{tmp_path}/m.db")
    await started.alerter.cycle()  # the first cycle draws the line; later runs are indexed as they change
    return started


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def said(message: dict[str, Any]) -> str:
    text: str = message.get("text", "")
    return json.dumps(message.get("blocks", []), ensure_ascii=False) + text


def button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    paging = next(b for b in message["blocks"] if b.get("block_id") == "runs:paging")
    return next(e for e in paging["elements"] if e["action_id"] == action_id)


async def ask(user: SlackUser, text: str, who: str = ADA) -> dict[str, Any]:
    status, ack, response_url = await user.command(text, user=who)
    assert status == 200 and ack == ""
    return await user.reply(response_url)


async def test_mine_lists_the_runs_of_the_callers_login_and_those_they_started_from_slack(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    ours, theirs = by("octocat", title="Octocat's run"), by("grace", title="Grace's run")
    from_slack = by("dev", title="Started from Slack")
    fabro.add(ours, theirs, from_slack)
    # A run started from Slack carries the token's login: the bot's own record says whose it is.
    now = datetime.now(UTC)
    await bot.store.index_run(IndexedRun(from_slack["id"], ADA, "dev", "running", "Started from Slack", None, now))
    await bot.alerter.cycle()
    reply = await ask(user, "mine")
    text = said(reply)
    assert "Octocat" in text and "Started from Slack" in text and "Grace" not in text
    assert "2 match" in text and "Your runs" in text
    assert slack.violations == []


async def test_mine_without_a_link_or_a_run_says_how_to_link(user: SlackUser, fabro: FakeFabro) -> None:
    fabro.add(by("grace"))
    before = len(fabro.requests)
    reply = await ask(user, "mine", who=BOB)
    text = said(reply)
    assert "link <login>" in text and "No runs of yours" in text
    assert len(fabro.requests) == before  # the bot's index answers, not Fabro


async def test_mine_pages_through_the_index_with_an_exact_count(bot: Bot, user: SlackUser, fabro: FakeFabro) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    runs = [by("octocat", "failed", title=f"Mine {i:02d}", created=start + timedelta(minutes=i)) for i in range(12)]
    fabro.add(*runs, by("octocat", "running", title="Mine still running"))
    await bot.alerter.cycle()
    first = await ask(user, "mine failed sort:created limit:5")
    text = said(first)
    assert "12 match" in text and "showing 1–5" in text
    assert "Mine 11" in text and "Mine 07" in text and "Mine 06" not in text and "still running" not in text
    nxt = button(first, "runs_page:next")
    _, _, click_url = await user.click({"action_id": nxt["action_id"], "value": nxt["value"]})
    second = await user.reply(click_url)
    assert "showing 6–10" in said(second) and "Mine 06" in said(second) and "Mine 11" not in said(second)


async def test_home_shows_the_same_runs_as_mine_and_says_exactly_how_many_more(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add(*[by("octocat", "failed", title=f"Home {i:02d}") for i in range(13)])
    await bot.alerter.cycle()
    status, _ = await user.open_home(ADA)
    assert status == 200
    await wait_for(lambda: ADA in slack.homes)
    view = json.dumps(slack.homes[ADA]["blocks"], ensure_ascii=False)
    assert "… and 3 more" in view and "mine" in view


async def test_by_filters_a_listing_and_says_how_many_of_those_read_are_shown(
    user: SlackUser, fabro: FakeFabro
) -> None:
    fabro.add(*[by("grace" if i % 6 == 0 else "linus", title=f"Run {i:02d}") for i in range(30)])
    reply = await ask(user, "by:grace")
    text = said(reply)
    assert "5 of 30 shown" in text
    assert "Fabro cannot filter by who started a run" in text
    assert text.count("by grace") == 5 + 2 and "by linus" not in text  # five cards, the header and the fallback
    # Fabro is asked for whole pages: the bot filters what it reads.
    assert fabro.calls("/api/v1/runs")[-1].query == [("page[limit]", "100"), ("page[offset]", "0")]


async def test_a_filtered_listing_stops_at_a_page_of_matches_and_next_continues_after_them(
    user: SlackUser, fabro: FakeFabro
) -> None:
    start = datetime.now(UTC) - timedelta(days=1)
    fabro.add(
        *[
            by("grace" if i % 10 == 0 else "linus", title=f"Run {i:03d}", created=start + timedelta(minutes=i))
            for i in range(250)
        ]
    )
    first = await ask(user, "by:grace limit:3")
    text = said(first)
    # Newest first (249, 248…): runs 240, 230, 220 are grace's; reading stops on the third.
    assert "3 of 30 shown" in text and "Run 240" in text and "Run 220" in text and "Run 210" not in text
    nxt = button(first, "runs_page:next")
    _, _, click_url = await user.click({"action_id": nxt["action_id"], "value": nxt["value"]})
    second = await user.reply(click_url)
    assert "Run 210" in said(second) and "Run 220" not in said(second)
    assert fabro.calls("/api/v1/runs")[-1].query[-2:] == [("page[limit]", "100"), ("page[offset]", "30")]
    assert "First page" in said(second)


async def test_by_me_keeps_the_callers_linked_login_and_needs_a_link(user: SlackUser, fabro: FakeFabro) -> None:
    fabro.add(by("octocat", title="Octocat's"), by("grace", title="Grace's"))
    text = said(await ask(user, "by:me"))
    assert "Octocat" in text and "Grace" not in text and "1 of 2 shown" in text
    unlinked = said(await ask(user, "by:me", who=BOB))
    assert "link <login>" in unlinked


async def test_exclusions_leave_out_a_creator_a_repository_and_a_workflow(user: SlackUser, fabro: FakeFabro) -> None:
    fabro.add(
        by("dependabot", title="Bump deps"),
        by("grace", title="Sandbox play", repository={"name": "acme/sandbox", "origin_url": None, "provider": "git"}),
        by(
            "grace",
            title="Nightly",
            workflow={"slug": "nightly", "name": None, "graph_name": None, "node_count": 3, "edge_count": 2},
        ),
        by("grace", title="Real work"),
    )
    text = said(await ask(user, "-by:dependabot -repo:acme/sandbox -workflow:nightly"))
    assert "Real work" in text and "1 of 4 shown" in text
    assert "Bump deps" not in text and "Sandbox play" not in text and "Nightly" not in text


async def test_a_misspelt_filter_name_gets_a_did_you_mean_with_its_value(user: SlackUser, fabro: FakeFabro) -> None:
    before = len(fabro.requests)
    _, ack, _ = await user.command("byy:grace")
    assert "Did you mean `by:grace`?" in ack
    assert len(fabro.requests) == before


async def test_a_subscription_by_a_login_alerts_only_on_that_logins_runs(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    _, _, response_url = await user.command("subscribe failed by:grace -repo:acme/sandbox", channel="C777")
    reply = await user.reply(response_url)
    assert "started by `grace`" in said(reply) and "not in repo `acme/sandbox`" in said(reply)
    grace, linus = by("grace", title="Grace broke it"), by("linus", title="Linus broke it")
    sandbox = by(
        "grace", title="In the sandbox", repository={"name": "acme/sandbox", "origin_url": None, "provider": "git"}
    )
    fabro.add(grace, linus, sandbox)
    for run in (grace, linus, sandbox):
        fabro.fail(run["id"], "boom")
    await bot.alerter.cycle()
    posted = json.dumps([m.blocks for m in slack.posts("C777")], ensure_ascii=False)
    assert "Grace broke it" in posted and "Linus broke it" not in posted and "In the sandbox" not in posted


async def test_subscribing_by_me_records_the_callers_logins_and_needs_a_link(user: SlackUser) -> None:
    _, _, response_url = await user.command("subscribe failed by:me", channel="C777")
    assert "started by `octocat`" in said(await user.reply(response_url))
    _, _, response_url = await user.command("subscribe failed by:me", channel="C777", user=BOB)
    assert "link <login>" in said(await user.reply(response_url))


# The words that choose what a person hears of (whose runs, which kinds, mutes, cost): a typo of each.
HEARING_TYPOS = (
    ("mien", "mine"),
    ("byy:octocat", "by:octocat"),
    ("-byy:dependabot", "-by:dependabot"),
    ("-rep:acme/sandbox", "-repo:acme/sandbox"),
    ("-workflw:nightly", "-workflow:nightly"),
    ("muet 01KJW4MG", "mute"),
    ("unmte 01KJW4MG", "unmute"),
    ("mutd", "muted"),
    ("subscribe succeded", "succeeded"),
    ("subscribe prr", "pr"),
    ("subscribe cots", "cost"),
    ("notify questions cots", "cost"),
    ("notify succeded", "succeeded"),
)


@pytest.mark.parametrize(("typo", "meant"), HEARING_TYPOS)
async def test_each_word_of_whose_and_which_misspelt_gets_a_did_you_mean_and_nothing_reaches_fabro(
    user: SlackUser, fabro: FakeFabro, typo: str, meant: str
) -> None:
    before = len(fabro.requests)
    status, ack, _ = await user.command(typo, channel="C0TEAM")
    assert status == 200
    assert f"Did you mean `{meant}`?" in ack, ack
    assert "Traceback" not in ack
    assert len(fabro.requests) == before


async def test_help_names_every_word_of_whose_and_which(user: SlackUser) -> None:
    status, ack, _ = await user.command("help")
    assert status == 200
    told = said(json.loads(ack))
    for word in ("mine", "by:me", "-by:", "-repo:", "-workflow:", "[succeeded]", "[pr]", "[cost]"):
        assert word in told, word
    for word in ("/runs mute", "/runs unmute", "/runs muted", "failed succeeded cost"):
        assert word in told, word
