"""Mute a run in one conversation: from an alert's menu or `/runs mute`, through signed requests.

No alerts, reminders or escalations about it there until the mute lapses; other channels and the
owner's DM are unaffected unless muted there; what is waiting still counts in stats.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from tests.acting.test_steering import question
from tests.conftest import SlackUser, StartBot
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack, Message, dm_of
from tests.telling.test_reminders import Clock, by_octocat, replies

OPS, TEAM = "C0OPS", "C0TEAM"
ADA, BOB = "U123ADA", "U456BOB"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path, clock: Clock) -> Bot:
    started = await start_bot(
        alert_pace=0.0,
        clock=clock,
        alert_channel=OPS,
        user_links="octocat=U123ADA",
        database_url=f"sqlite:///{tmp_path}/mute.db",
        escalate_after="2h",
        escalate_to="U999ESC",
    )
    await started.alerter.cycle()
    return started


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def menu_option(alert: Message, choice: str) -> dict[str, Any]:
    [menu] = [e for b in alert.blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "overflow"]
    assert menu["action_id"] == "runs_mute"
    return next(o for o in menu["options"] if o["value"].startswith(f"{choice}:"))


async def choose(user: SlackUser, alert: Message, choice: str, *, who: str = ADA) -> dict[str, Any]:
    option = menu_option(alert, choice)
    action = {"action_id": "runs_mute", "type": "overflow", "selected_option": option}
    status, _, url = await user.click(
        action, channel=alert.channel, message_ts=alert.ts, ephemeral=False, block_id="links:x", user=who
    )
    assert status == 200
    return await user.reply(url)


async def ask_again(bot: Bot, fabro: FakeFabro, run: dict[str, Any], qid: str) -> None:
    fabro.ask(run["id"], question("yes_no", qid=qid))
    await bot.alerter.cycle()


async def test_mute_for_an_hour_from_the_menu_stops_alerts_here_and_not_elsewhere_until_it_lapses(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack, clock: Clock
) -> None:
    _, _, url = await user.command("subscribe questions", channel=TEAM)
    await user.reply(url)
    run = by_octocat(title="Chatty run")
    fabro.add(run)
    await ask_again(bot, fabro, run, "q-1")
    [alert] = slack.posts(OPS)
    said = await choose(user, alert, "1h")
    assert said["response_type"] == "in_channel"  # the channel sees who muted what
    assert f"<@{ADA}> muted run `{run['id']}` here until" in json.dumps(said)
    fabro.answer(run["id"], "q-1", {"kind": "yes"})
    await bot.alerter.cycle()
    await ask_again(bot, fabro, run, "q-2")
    assert slack.alert_keys(OPS) == [f"question:{run['id']}:q-1"]  # nothing new in the muted channel
    assert f"question:{run['id']}:q-2" in slack.alert_keys(TEAM)  # another channel is told
    assert any(f"question:{run['id']}:q-2" == k for k in slack.alert_keys(dm_of(ADA)))  # and the owner's DM
    clock.advance(minutes=61)
    fabro.answer(run["id"], "q-2", {"kind": "yes"})
    await ask_again(bot, fabro, run, "q-3")
    assert f"question:{run['id']}:q-3" in slack.alert_keys(OPS)  # the mute lapsed
    assert slack.violations == []


async def test_mute_and_unmute_by_command_with_a_prefix_and_muted_lists_them(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = by_octocat(title="Quiet please")
    fabro.add(run)
    _, _, url = await user.command(f"mute {run['id'][:12]} 1d", channel=OPS)
    reply = await user.reply(url)
    assert reply["response_type"] == "in_channel" and run["id"] in json.dumps(reply)
    _, _, url = await user.command("muted", channel=OPS)
    listing = json.dumps(await user.reply(url))
    assert "1 run muted here" in listing and run["id"] in listing and f"<@{ADA}>" in listing
    await ask_again(bot, fabro, run, "q-1")
    assert slack.posts(OPS) == []
    _, _, url = await user.command(f"unmute {run['id']}", channel=OPS)
    assert "unmuted" in json.dumps(await user.reply(url))
    fabro.answer(run["id"], "q-1", {"kind": "yes"})
    await ask_again(bot, fabro, run, "q-2")
    assert slack.alert_keys(OPS) == [f"question:{run['id']}:q-2"]
    _, _, url = await user.command("muted", channel=OPS)
    assert "Nothing is muted here" in json.dumps(await user.reply(url))


async def test_until_it_ends_covers_the_end_of_the_run_too(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = by_octocat(title="Doomed")
    fabro.add(run)
    await ask_again(bot, fabro, run, "q-1")
    [alert] = slack.posts(OPS)
    await choose(user, alert, "end")
    fabro.fail(run["id"], "boom")
    await bot.alerter.cycle()
    assert slack.alert_keys(OPS) == [f"question:{run['id']}:q-1"]
    assert fabro.failed_key(run["id"]) in slack.alert_keys(dm_of(ADA))  # the owner's DM is not muted


async def test_a_channel_mute_needs_the_routing_permission_but_muting_ones_own_dm_does_not(
    start_bot: StartBot, tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_bot(
        alert_pace=0.0,
        alert_channel=OPS,
        user_links="octocat=U123ADA",
        subscription_allowlist="U0BOSS",
        database_url=f"sqlite:///{tmp_path}/perm.db",
    )
    await bot.alerter.cycle()
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        run = by_octocat(title="Mine to mute")
        fabro.add(run)
        await ask_again(bot, fabro, run, "q-1")
        [alert] = slack.posts(OPS)
        refused = await choose(user, alert, "1d")
        assert refused["response_type"] == "ephemeral" and "SUBSCRIPTION_ALLOWLIST" in json.dumps(refused)
        [dm] = slack.posts(dm_of(ADA))
        told = await choose(user, dm, "end")
        assert told["response_type"] == "in_channel" and "muted run" in json.dumps(told)
        fabro.answer(run["id"], "q-1", {"kind": "yes"})
        await ask_again(bot, fabro, run, "q-2")
        assert f"question:{run['id']}:q-2" in slack.alert_keys(OPS)  # the channel was never muted
        assert slack.alert_keys(dm_of(ADA)) == [f"question:{run['id']}:q-1"]  # the DM is


async def test_a_muted_channel_gets_no_reminder_and_no_escalation_in_its_place(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack, clock: Clock
) -> None:
    run = by_octocat(title="Waiting a long time")
    fabro.add(run)
    await ask_again(bot, fabro, run, "q-1")
    [alert] = slack.posts(OPS)
    [dm] = slack.posts(dm_of(ADA))
    await choose(user, alert, "1d")
    clock.advance(hours=3)
    await bot.reminders.sweep()
    assert [m for m in replies(slack, alert) if "waiting" in m.text] == []
    assert len(replies(slack, dm)) == 1  # the owner's DM still gets its reminder
    assert slack.posts(dm_of("U999ESC")) == []  # no escalation by DM for a muted channel


async def test_a_muted_question_still_waits_in_stats(bot: Bot, user: SlackUser, fabro: FakeFabro) -> None:
    run = by_octocat(title="Counted anyway")
    fabro.add(run)
    _, _, url = await user.command(f"mute {run['id']}", channel=OPS)
    await user.reply(url)
    await ask_again(bot, fabro, run, "q-1")
    _, _, url = await user.command("stats", channel=OPS)
    assert "Counted anyway" in json.dumps(await user.reply(url), ensure_ascii=False)


async def test_mute_words_are_checked_with_kind_errors(user: SlackUser, fabro: FakeFabro) -> None:
    for words, said in (
        ("mute", "takes the id of a run"),
        ("mute 01KJW4MG 3weeks", "is not how long to mute"),
        ("mute 01KJW4MG 45d", "is not how long to mute"),
        ("muted now", "`muted` stands alone"),
        ("mutd", "Did you mean `muted`?"),
    ):
        _, ack, _ = await user.command(words)
        assert said in ack, words


async def test_a_muted_question_that_ends_unanswered_still_counts_in_stats(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack, clock: Clock
) -> None:
    run = by_octocat(title="Nobody answered")
    fabro.add(run)
    await ask_again(bot, fabro, run, "q-1")
    [alert] = slack.posts(OPS)
    await choose(user, alert, "end")
    fabro.fail(run["id"], "No answer came before the question timed out")
    await bot.alerter.cycle()
    assert slack.alert_keys(OPS) == [f"question:{run['id']}:q-1"]  # its end was muted here too
    clock.advance(seconds=5)
    _, _, url = await user.command("stats today", channel=OPS)
    told = json.dumps(await user.reply(url), ensure_ascii=False)
    assert "*Failed*\\n1" in told  # the mute kept it out of the channel, not out of the picture
