"""Following a run from Slack: a live card edited in place, a thread told what matters (and only that),
exactly once across restarts, within Slack's edit budget; and steering from the card's thread."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.slack.webapi import EditBudget
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack, Message

CHANNEL = "C123OPS"
ADA = "U123ADA"


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    return await start_bot(alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/follow.db", fabro_event_stream=False)


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def running(fabro: FakeFabro, title: str = "Refactor billing") -> dict[str, Any]:
    run = make_run("running", title=title)
    fabro.add(run)
    fabro.emit(run["id"], "run.started", {})
    return run


async def follow_by_command(user: SlackUser, run_id: str) -> dict[str, Any]:
    _, _, url = await user.command(f"follow {run_id}")
    return await user.reply(url)


def card(slack: FakeSlack) -> Message:
    [posted] = [m for m in slack.posts(CHANNEL) if m.thread_ts is None]
    return posted


def thread(slack: FakeSlack, parent: Message) -> list[Message]:
    return [m for m in slack.messages if m.thread_ts == parent.ts]


def texts(message: Message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


async def test_follow_posts_a_live_card_and_the_thread_hears_only_what_matters(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    reply = await follow_by_command(user, run["id"])
    assert "Following run" in reply["text"] and reply["response_type"] == "ephemeral"
    live = card(slack)
    assert "Refactor billing" in texts(live) and "followed here" in texts(live)
    for stage in ("plan", "implement", "lint", "test", "docs"):  # forty stages would say as little
        fabro.stage(run["id"], stage, "running")
        fabro.stage(run["id"], stage, "succeeded", wall_time_ms=1500)
    fabro.stage(run["id"], "verify", "failed", will_retry=True, failure={"message": "3 tests failed"})
    fabro.stage(run["id"], "verify", "retrying", attempt=2, max_attempts=3)
    fabro.emit(run["id"], "run.notice", {"level": "info", "code": "x", "message": "just so you know"})
    fabro.emit(run["id"], "run.notice", {"level": "warn", "code": "git_push_failed", "message": "git push failed"})
    await bot.follower.sync_all()
    said = [m.text for m in thread(slack, live)]
    assert said == [
        "❌ Stage verify failed — retrying: 3 tests failed".replace("❌", ":x:"),
        ":repeat: Stage verify retrying (attempt 2 of 3)",
        ":warning: git push failed",
    ]
    assert live.edits >= 1 and "verify" in texts(live) and ":white_check_mark: plan" in texts(live)
    fabro.finish(run["id"])
    await bot.follower.sync_all()
    await wait_for(lambda: len(thread(slack, live)) == 4)
    assert thread(slack, live)[-1].text.startswith(":white_check_mark: Succeeded")
    assert await bot.store.follows() == []  # a run that ended is unfollowed by itself
    await bot.follower.editor.drain()
    assert "finished" in texts(live)


async def test_the_thread_reads_fabros_flat_pull_request_event_and_its_error_notices(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    await follow_by_command(user, run["id"])
    live = card(slack)
    fabro.emit(run["id"], "run.notice", {"level": "error", "code": "pull_request_failed", "message": "PR failed"})
    fabro.open_pull_request(run["id"], number=12, draft=True)
    fabro.emit(run["id"], "pull_request.created", fabro.created_event(run["id"]))  # flat: pr_url, pr_number, …
    await bot.follower.sync_all()
    pr_url = fabro.runs[run["id"]]["pull_request"]["html_url"]
    said = [m.text for m in thread(slack, live)]
    assert said[0] == ":rotating_light: PR failed"
    opened = f":twisted_rightwards_arrows: Pull request <{pr_url}|#12> opened as a draft: GitHub merges only"
    assert said[1].startswith(opened)


async def test_follow_from_an_alert_uses_that_alerts_message(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(
        alert_channel=CHANNEL, alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/a.db", fabro_event_stream=False
    )
    await bot.alerter.cycle()
    run = running(fabro)
    fabro.ask(run["id"], {"id": "q-1", "text": "Deploy?", "question_type": "yes_no"})
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    [links] = [b for b in alert.blocks if b["type"] == "actions" and b["block_id"].startswith("links:")]
    [follow] = [e for e in links["elements"] if e["type"] == "button" and e["text"]["text"] == "Follow"]
    async with aiohttp.ClientSession() as session:
        person = SlackUser.of(bot, slack, session)
        _, _, url = await person.click(
            {"action_id": follow["action_id"], "value": follow["value"]},
            block_id=links["block_id"],
            channel=CHANNEL,
            message_ts=alert.ts,
            ephemeral=False,
        )
        assert "Following run" in (await person.reply(url))["text"]
    assert len(slack.posts(CHANNEL)) == 1  # no second message: the alert became the live card
    [followed] = await bot.store.follows()
    assert followed.ts == alert.ts and alert.edits == 1 and "followed here" in texts(alert)
    fabro.answer(run["id"], "q-1", {"kind": "yes"})
    await bot.alerter.cycle()  # the alert's own edit leaves the live card alone: one writer per message
    await bot.follower.sync_all()
    assert "followed here" in texts(alert)


async def test_unfollow_and_following_twice(bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = running(fabro)
    await follow_by_command(user, run["id"])
    await follow_by_command(user, run["id"])
    assert len(await bot.store.follows()) == 1 and len(slack.posts(CHANNEL)) == 1
    _, _, url = await user.command(f"unfollow {run['id']}")
    assert "No longer following" in (await user.reply(url))["text"]
    assert await bot.store.follows() == []


async def test_where_the_bot_cannot_post_it_says_how_to_invite_it(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    slack.unreachable[CHANNEL] = "not_in_channel"
    reply = await follow_by_command(user, run["id"])
    assert "/invite" in reply["text"] and await bot.store.follows() == []


async def test_a_cap_on_runs_followed_at_once(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(follow_max=1, database_url=f"sqlite:///{tmp_path}/c.db", fabro_event_stream=False)
    first, second = running(fabro, "one"), running(fabro, "two")
    async with aiohttp.ClientSession() as session:
        person = SlackUser.of(bot, slack, session)
        await follow_by_command(person, first["id"])
        reply = await follow_by_command(person, second["id"])
    assert "FOLLOW_MAX" in reply["text"] and len(await bot.store.follows()) == 1


async def test_a_finished_run_cannot_be_followed(user: SlackUser, fabro: FakeFabro) -> None:
    run = make_run("succeeded")
    fabro.add(run)
    assert "nothing left to follow" in (await follow_by_command(user, run["id"]))["text"]


async def test_a_reply_whose_post_was_lost_is_found_in_the_thread_not_posted_twice(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path}/lost.db"
    bot = await start_bot(database_url=database, fabro_event_stream=False)
    run = running(fabro)
    async with aiohttp.ClientSession() as session:
        await follow_by_command(SlackUser.of(bot, slack, session), run["id"])
    live = card(slack)
    # The client the outbox posts with; slack_sdk annotates its timeout as int, aiohttp takes seconds as a float.
    bot.outbox.slack.timeout = 0.3  # type: ignore[assignment]
    slack.slow_reply["chat.postMessage"] = 1.0  # Slack posts the reply; the bot never hears back
    fabro.stage(run["id"], "verify", "failed", failure={"message": "boom"})
    await bot.follower.sync_all()
    assert len(thread(slack, live)) == 1
    await bot.stop()  # and the process goes away before it learns the reply is there
    again = await start_bot(database_url=database, fabro_event_stream=False)
    await again.follower.sync_all()
    fabro.stage(run["id"], "verify", "retrying", attempt=2, max_attempts=3)
    await again.follower.sync_all()
    said = [m.text for m in thread(slack, live)]
    assert said == [":x: Stage verify failed: boom", ":repeat: Stage verify retrying (attempt 2 of 3)"]


async def test_card_edits_are_coalesced_and_the_last_state_lands(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    await follow_by_command(user, run["id"])
    live = card(slack)
    # Far longer than the six changes below take even on a loaded machine: were the spacing to run
    # out midway, a second edit would land early and the count below would be off.
    bot.follower.editor.spacing = 5.0
    started = time.monotonic()
    for i in range(6):  # six changes in quick succession
        fabro.stage(run["id"], f"step-{i}", "running")
        await bot.follower.sync_all()
    assert live.edits == 1  # the first at once; the rest wait and merge
    await wait_for(lambda: live.edits == 2, timeout=20)
    assert time.monotonic() - started >= 4.9 and "step-5" in texts(live)


def test_the_edit_budget_is_shared_and_makes_edits_wait() -> None:
    now = [0.0]
    budget = EditBudget(per_minute=2, clock=lambda: now[0])
    assert budget.wait() == 0
    budget.spend()
    budget.spend()
    assert budget.wait() == 60
    now[0] = 30.0
    assert budget.wait() == 30
    now[0] = 60.0
    assert budget.wait() == 0


async def test_a_full_pass_over_follows_reads_one_request_per_idle_followed_run(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    await follow_by_command(user, run["id"])
    fabro.requests.clear()
    await bot.follower.sync_all()
    assert [r.path for r in fabro.requests] == [f"/api/v1/runs/{run['id']}/events"]


async def streaming_bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    """A leader listening to Fabro's global event stream, past its first cycle."""
    bot = await start_bot(alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/live.db", fabro_event_stream=True)
    await bot.scheduled_cycle()
    assert bot.live is not None
    await bot.live.start()
    await wait_for(lambda: bot.live is not None and bot.live.connected, timeout=5)
    return bot


async def test_with_the_stream_a_stage_failure_reaches_the_thread_within_seconds_without_reading_events(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await streaming_bot(start_bot, tmp_path)
    run = running(fabro)
    async with aiohttp.ClientSession() as session:
        await follow_by_command(SlackUser.of(bot, slack, session), run["id"])
    live = card(slack)
    fabro.requests.clear()
    started = time.monotonic()
    fabro.stage(run["id"], "verify", "failed", failure={"message": "boom"})
    # No cycle runs here (the test runs them): only the stream can bring it, however loaded the machine.
    await wait_for(lambda: thread(slack, live), timeout=15)
    assert time.monotonic() - started < 15
    await wait_for(lambda: live.edits >= 1, timeout=15)
    assert fabro.calls(f"/api/v1/runs/{run['id']}/events") == []  # the stream carried the event itself
    assert fabro.run_streams.get(run["id"]) in (None, [])  # no connection of its own


async def test_an_event_the_stream_lost_is_read_back_from_the_stored_seq(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await streaming_bot(start_bot, tmp_path)
    run = running(fabro)
    async with aiohttp.ClientSession() as session:
        await follow_by_command(SlackUser.of(bot, slack, session), run["id"])
    live = card(slack)
    fabro.requests.clear()
    listening, fabro.streams = fabro.streams, []  # a slow reader loses this one
    fabro.stage(run["id"], "plan", "failed", failure={"message": "lost on the way"})
    fabro.streams = listening
    fabro.stage(run["id"], "verify", "failed", failure={"message": "seen"})
    await wait_for(lambda: len(thread(slack, live)) == 2, timeout=15)
    said = [m.text for m in thread(slack, live)]
    assert "lost on the way" in said[0] and "seen" in said[1]
    assert len(fabro.calls(f"/api/v1/runs/{run['id']}/events")) == 1  # one read, from the stored seq


async def test_an_idle_cycle_costs_no_request_per_followed_run(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/idle.db", fabro_event_stream=False)
    runs = [running(fabro, f"Run {i}") for i in range(5)]
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        for run in runs:
            await follow_by_command(user, run["id"])
    await bot.scheduled_cycle()  # the first: every follow is synced once
    await bot.scheduled_cycle()
    fabro.requests.clear()
    await bot.scheduled_cycle()
    assert [r.path for r in fabro.requests] == ["/api/v1/runs"]  # the poll's one listing, nothing per follow
    fabro.stage(runs[2]["id"], "verify", "failed", failure={"message": "only this one"})
    fabro.requests.clear()
    await bot.scheduled_cycle()
    per_run = {r.path for r in fabro.requests if r.path.endswith("/events")}
    assert per_run == {f"/api/v1/runs/{runs[2]['id']}/events"}  # only the run the listing saw change


async def test_words_in_the_live_cards_thread_steer_the_agent_or_answer_its_question(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    await follow_by_command(user, run["id"])
    live = card(slack)
    await user.mention("steer try the staging database", channel=CHANNEL, thread_ts=live.ts)
    await wait_for(lambda: fabro.calls(f"/api/v1/runs/{run['id']}/steer", method="POST"))
    [steer] = fabro.calls(f"/api/v1/runs/{run['id']}/steer", method="POST")
    assert steer.body == {"text": "try the staging database"}
    fabro.ask(run["id"], {"id": "q-9", "text": "Which region?", "question_type": "freeform"})
    await user.mention("eu-west-1", channel=CHANNEL, thread_ts=live.ts)
    await wait_for(lambda: fabro.calls(f"/api/v1/runs/{run['id']}/questions/q-9/answer", method="POST"))
    assert len(fabro.calls(f"/api/v1/runs/{run['id']}/steer", method="POST")) == 1  # the answer was no steer


async def test_a_bare_mention_in_the_live_thread_with_no_question_waiting_never_steers(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    await follow_by_command(user, run["id"])
    live = card(slack)
    await user.mention("no", channel=CHANNEL, thread_ts=live.ts)  # a late answer to a question gone
    # Taken as a question to Fabro about the run (answered in the thread), never as an instruction.
    await wait_for(lambda: thread(slack, live) or slack.calls_to("chat.postEphemeral"))
    assert fabro.calls(f"/api/v1/runs/{run['id']}/steer", method="POST") == []
