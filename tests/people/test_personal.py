"""Personal notifications end to end: a linked person gets a direct message about their run's
question, approval or failure, exactly once (also across a kill -9), edited in place as the run
moves on, with the same controls as in channels; nobody unlinked is messaged."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.core.records import AlertState
from bot.failpoints import CRASH_AT_ENV
from tests.acting.test_steering import question
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run, user_principal, worker_principal
from tests.fakes.slack import FakeSlack, Message, dm_of
from tests.store.test_replicas import first_cycle_done
from tests.telling.test_alert_crashes import start_process, stop, wait_exit

ADA, BOB = "U123ADA", "U456BOB"
ADA_DM = dm_of(ADA)
CHANNEL = "C0ALERTS"


def by(login: str, **run: Any) -> dict[str, Any]:
    """A run started in Fabro by the GitHub user `login`."""
    created_by = user_principal(login)
    return make_run("running", created_by=created_by, **run)


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    started = await start_bot(alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/dm.db")
    await started.alerter.cycle()
    return started


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, url = await user.command("link octocat", user=ADA)
        assert "Linked" in (await user.reply(url))["text"]
        yield user


def dms(slack: FakeSlack) -> list[Message]:
    return slack.posts(ADA_DM)


async def test_a_question_on_your_run_reaches_you_once_and_you_can_answer_it_there(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = by("octocat", title="Ship the release")
    fabro.add(run, by("someone-else"))
    fabro.ask(run["id"], question("yes_no"))
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    [dm] = dms(slack)
    assert "A yes_no question?" in str(dm.blocks) and slack.posts(CHANNEL) == []
    assert [c.args["users"] for c in slack.calls_to("conversations.open")] == [ADA]  # opened once, remembered
    [block] = [b for b in dm.blocks if b["type"] == "actions" and b["block_id"].startswith("answer:")]
    yes = next(e for e in block["elements"] if e["action_id"] == "steer:answer:0")
    status, _, _ = await user.click(
        {"action_id": yes["action_id"], "value": yes.get("value"), "type": "button"},
        block_id=block["block_id"],
        channel=ADA_DM,
        message_ts=dm.ts,
        ephemeral=False,
        user=ADA,
    )
    assert status == 200
    await wait_for(lambda: dm.edits == 1)
    assert f"by <@{ADA}>: Yes" in str(dm.blocks)
    [alert] = await bot.store.alerts_for_run(run["id"])
    assert (alert.channel, alert.state) == (ADA_DM, AlertState.RESOLVED)
    await bot.alerter.cycle()
    assert len(dms(slack)) == 1 and slack.violations == []


async def test_your_failed_run_and_an_approval_on_its_child_reach_you(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await bot.alerter.cycle()  # the first look since someone linked: what failed before is history
    parent = by("octocat", title="Parent")
    child = make_run("running", title="Child", parent_id=parent["id"], created_by=worker_principal(parent["id"]))
    failing = by("OctoCat", title="Will fail")
    fabro.add(parent, child, failing)
    fabro.request_approval(child["id"])
    fabro.fail(failing["id"], "tests failed: 3 of 120")
    await bot.alerter.cycle()
    said = " ".join(str(m.blocks) for m in dms(slack))
    assert len(dms(slack)) == 2 and "tests failed: 3 of 120" in said and "Child" in said
    fabro.decide(child["id"], True)
    await bot.alerter.cycle()
    edited = [m for m in dms(slack) if m.edits]
    assert len(edited) == 1 and "Child" in str(edited[0].blocks)  # moved on: edited in place


async def test_a_child_run_an_agent_created_is_its_parents_owners_and_a_scheduled_run_nobodys(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    parent = by("octocat", title="Parent")
    child = make_run("running", title="Child asks", parent_id=parent["id"], created_by=worker_principal(parent["id"]))
    fabro.add(parent, child)
    fabro.add_automation("nightly-deps", "Nightly deps")
    scheduled = fabro.schedule_automation("nightly-deps")
    fabro.ask(child["id"], question("yes_no"))
    fabro.ask(scheduled["id"], question("yes_no", qid="q-2"))
    await bot.alerter.cycle()
    [dm] = dms(slack)  # the child's question reached the parent's owner; the schedule's, nobody
    assert "Child asks" in str(dm.blocks)
    assert [c.args["users"] for c in slack.calls_to("conversations.open")] == [ADA]


async def test_unlinked_people_and_the_bots_own_runs_get_no_message(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await bot.alerter.cycle()
    nobody, ours = by("stranger"), by("dev")
    fabro.add(nobody, ours)
    fabro.fail(nobody["id"], "boom")
    fabro.fail(ours["id"], "boom")
    await bot.alerter.cycle()
    assert not [m for m in slack.messages if m.channel.startswith("D")]
    assert slack.calls_to("conversations.open") == []


async def test_without_the_im_write_scope_only_that_message_is_lost_and_the_channel_still_hears(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    slack.scopes = tuple(s for s in slack.scopes if s != "im:write")
    bot = await start_bot(
        alert_pace=0.0, alert_channel=CHANNEL, user_links="octocat=U123ADA", database_url=f"sqlite:///{tmp_path}/x.db"
    )
    await bot.alerter.cycle()
    run = by("octocat")
    fabro.add(run)
    fabro.fail(run["id"], "boom")
    report = await bot.alerter.cycle()
    assert len(slack.posts(CHANNEL)) == 1 and dms(slack) == [] and report.failed == 0


async def test_a_retry_from_slack_makes_the_new_run_yours(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    """Fabro records the bot's token as the new run's creator; the bot's own record of who clicked decides."""
    bot = await start_bot(alert_pace=0.0, alert_channel=CHANNEL, database_url=f"sqlite:///{tmp_path}/r.db")
    await bot.alerter.cycle()
    run = by("stranger", title="Flaky")
    fabro.add(run)
    fabro.fail(run["id"], "flaky")
    await bot.alerter.cycle()
    [post] = slack.posts(CHANNEL)
    async with aiohttp.ClientSession() as session:
        await SlackUser.of(bot, slack, session).press(post, "steer:retry", user=BOB)
        await wait_for(lambda: post.edits >= 1)
    [new] = [r for r in fabro.runs.values() if r.get("retried_from") == run["id"]]
    fabro.fail(new["id"], "flaky again")
    await bot.alerter.cycle()
    [dm] = slack.posts(dm_of(BOB))
    assert "flaky again" in str(dm.blocks)


async def test_each_retry_of_a_run_that_failed_twice_belongs_to_whoever_pressed_it(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    """Resumed in place and failed again, a run can be retried once per failure, by different people."""
    bot = await start_bot(alert_pace=0.0, alert_channel=CHANNEL, database_url=f"sqlite:///{tmp_path}/r.db")
    await bot.alerter.cycle()
    run = by("stranger", title="Flaky")
    fabro.add(run)
    fabro.fail(run["id"], "flaky")
    made: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        for who in (ADA, BOB):
            await bot.alerter.cycle()
            await user.press(slack.posts(CHANNEL)[-1], "steer:retry", user=who)
            await wait_for(
                lambda: len([r for r in fabro.runs.values() if r.get("retried_from") == run["id"]]) > len(made)
            )
            [new] = [
                r for r in fabro.runs.values() if r.get("retried_from") == run["id"] and r["id"] not in made.values()
            ]
            made[who] = new["id"]
            if who == ADA:
                # Minutes later the first failure is resumed in Fabro as well, and the run fails again.
                earlier = datetime.now(UTC) - timedelta(minutes=5)
                fabro.runs[new["id"]]["timestamps"]["created_at"] = earlier.strftime("%Y-%m-%dT%H:%M:%SZ")
                fabro.resume(run["id"])
                await bot.alerter.cycle()
                await asyncio.sleep(0.005)
                fabro.fail(run["id"], "flaky twice")
    for who, new_id in made.items():
        fabro.fail(new_id, f"the retry {who} made failed")
    await bot.alerter.cycle()
    assert "the retry U123ADA made failed" in str([m.blocks for m in slack.posts(dm_of(ADA))])
    assert "the retry U456BOB made failed" in str([m.blocks for m in slack.posts(dm_of(BOB))])
    assert "the retry U456BOB made failed" not in str([m.blocks for m in slack.posts(dm_of(ADA))])


@pytest.mark.parametrize("crash_at", ["alert.claimed", "alert.posted"])
async def test_a_kill_9_neither_loses_nor_repeats_a_direct_message(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, crash_at: str
) -> None:
    links = {"ALERT_CHANNEL": None, "USER_LINKS": "octocat=U123ADA"}
    first = await start_process(fabro, slack, tmp_path, "first", **links, **{CRASH_AT_ENV: crash_at})
    try:
        await wait_for(lambda: first_cycle_done(fabro), timeout=20)
        run = by("octocat", title="Crash test")
        fabro.add(run)
        fabro.fail(run["id"], "boom")
        assert await wait_exit(first) == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
    assert len(dms(slack)) == (0 if crash_at == "alert.claimed" else 1)
    second = await start_process(fabro, slack, tmp_path, "second", **links)
    try:
        await wait_for(lambda: len(dms(slack)) >= 1, timeout=20)
        cycles = len(fabro.calls("/api/v1/runs"))
        await wait_for(lambda: len(fabro.calls("/api/v1/runs")) >= cycles + 3, timeout=20)
    finally:
        await stop(second)
    assert len(dms(slack)) == 1 and "Crash test" in str(dms(slack)[0].blocks)
    await asyncio.sleep(0)
    assert "Traceback" not in (tmp_path / "second.log").read_text()


async def test_notify_chooses_which_direct_messages_you_get(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    async def say(text: str) -> str:
        _, _, url = await user.command(text, user=ADA)
        return str((await user.reply(url))["text"])

    assert "questions" in await say("notify") and "the default" in await say("whoami")
    said = await say("notify failed")
    assert "failed" in said and "questions" not in said and "default" not in said
    await bot.alerter.cycle()
    asked, failing = by("octocat", title="Asks"), by("octocat", title="Fails")
    fabro.add(asked, failing)
    fabro.ask(asked["id"], question("yes_no"))
    fabro.fail(failing["id"], "boom")
    await bot.alerter.cycle()
    [dm] = dms(slack)
    assert "Fails" in str(dm.blocks)
    assert "off" in await say("notify off")
    again = by("octocat", title="Fails again")
    fabro.add(again)
    fabro.fail(again["id"], "boom")
    await bot.alerter.cycle()
    assert len(dms(slack)) == 1
    status, ack, _ = await user.command("notify everything", user=ADA)
    assert status == 200 and "can't notify you of `everything`" in ack


async def test_a_run_started_from_slack_is_its_starters(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> None:
    """Fabro records the bot's token user as the creator; the bot's own record says who pressed Start."""
    await bot.alerter.cycle()
    fabro.add_automation("nightly-deps", "Nightly dependency bumps")
    async with aiohttp.ClientSession() as session:
        person = SlackUser.of(bot, slack, session)
        _, _, url = await person.command("start nightly-deps", user=BOB)
        card = await person.reply(url)
        [go] = [
            e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"] if e["text"]["text"] == "Start"
        ]
        await person.click({"action_id": go["action_id"], "value": go["value"]}, block_id="start:buttons", user=BOB)
        await wait_for(lambda: [r for r in fabro.runs.values() if r.get("automation")])
    [run] = [r for r in fabro.runs.values() if r.get("automation")]
    assert run["created_by"]["login"] == "dev"  # the token's user, linked to nobody
    fabro.fail(run["id"], "deps conflict")
    await bot.alerter.cycle()
    [dm] = slack.posts(dm_of(BOB))
    assert "deps conflict" in str(dm.blocks)


async def test_succeeded_runs_are_told_only_to_those_who_asked(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await bot.alerter.cycle()
    quiet = by("octocat", title="Quietly done")
    fabro.add(quiet)
    fabro.finish(quiet["id"])
    await bot.alerter.cycle()
    assert dms(slack) == []  # off by default
    _, _, url = await user.command("notify questions approvals failed succeeded", user=ADA)
    assert "succeeded" in (await user.reply(url))["text"]
    told = by("octocat", title="Done and told")
    fabro.add(told)
    fabro.finish(told["id"])
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    [dm] = [m for m in dms(slack) if "Done and told" in m.text]  # once, however many cycles
    assert "Run succeeded" in dm.text and slack.posts(CHANNEL) == [] and slack.violations == []
