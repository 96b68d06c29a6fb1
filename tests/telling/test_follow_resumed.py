"""A followed run that fails and is resumed from Slack is followed again: the same live card and
thread take it up from the stored seq, so nothing is told twice; a run not resumed from Slack is not."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack, Message

CHANNEL = "C123OPS"


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    return await start_bot(alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/follow.db", fabro_event_stream=False)


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def card(slack: FakeSlack) -> Message:
    [posted] = [m for m in slack.posts(CHANNEL) if m.thread_ts is None]
    return posted


def thread(slack: FakeSlack, parent: Message) -> list[str]:
    return [m.text for m in slack.messages if m.thread_ts == parent.ts]


def resumes(fabro: FakeFabro, run_id: str) -> int:
    return len([r for r in fabro.calls(method="POST") if r.path.endswith(f"/runs/{run_id}/start")])


def texts(message: Message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) + message.text


async def followed_then_failed(bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack) -> dict[str, Any]:
    """A run followed by `/runs follow`, which fails after a checkpoint: its follow ends."""
    run = make_run("running", title="Refactor billing")
    fabro.add(run)
    fabro.emit(run["id"], "run.started", {})
    fabro.checkpoint(run["id"], 2)
    _, _, url = await user.command(f"follow {run['id']}")
    assert "Following run" in (await user.reply(url))["text"]
    fabro.stage(run["id"], "verify", "running")
    fabro.fail(run["id"], "verify: 3 tests failed")
    await bot.follower.sync_all()
    live = card(slack)
    await wait_for(lambda: any("3 tests failed" in said for said in thread(slack, live)), timeout=30)
    assert await bot.store.follows() == []  # the follow ended with the run
    await bot.follower.editor.drain()
    assert "— failed" in live.text
    return run


async def press_resume(user: SlackUser, live: Message) -> str:
    """Press the live card's own Resume button, signed as Slack sends it; the response URL it gave."""
    status, url = await user.press(live, "steer:resume_run")
    assert status == 200
    return url


async def test_a_followed_run_resumed_from_its_card_is_followed_again_in_the_same_thread_once(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = await followed_then_failed(bot, user, fabro, slack)
    live = card(slack)
    told_before = thread(slack, live)

    await press_resume(user, live)
    # The card shows the run at work again, as the live card (followed here), not as a settled alert.
    await wait_for(lambda: "— runnable" in live.text and "followed here" in texts(live), timeout=30)
    assert resumes(fabro, run["id"]) == 1
    [again] = await bot.store.follows(run["id"])
    assert (again.channel, again.ts, again.ended_at) == (CHANNEL, live.ts, None)

    fabro._set_status(run["id"], "running")
    fabro.stage(run["id"], "verify", "failed", will_retry=True, failure={"message": "1 test still failing"})
    fabro.stage(run["id"], "verify", "retrying", attempt=2, max_attempts=3)
    await bot.follower.sync_all()
    await bot.follower.sync_all()  # a second pass tells nothing twice
    await wait_for(lambda: len(thread(slack, live)) == len(told_before) + 2, timeout=30)
    assert thread(slack, live)[: len(told_before)] == told_before  # what was told before is not retold
    new = thread(slack, live)[len(told_before) :]
    assert new == [
        ":x: Stage verify failed — retrying: 1 test still failing",
        ":repeat: Stage verify retrying (attempt 2 of 3)",
    ]
    assert [m for m in slack.posts(CHANNEL) if m.thread_ts is None] == [live]  # no second card
    await bot.follower.editor.drain()
    assert "— running" in live.text and "verify" in texts(live)

    fabro.finish(run["id"])
    await bot.follower.sync_all()
    await wait_for(lambda: thread(slack, live)[-1].startswith(":white_check_mark: Succeeded"), timeout=30)
    assert await bot.store.follows() == []


async def test_a_run_resumed_outside_slack_after_its_follow_ended_is_not_followed_again(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = await followed_then_failed(bot, user, fabro, slack)
    live = card(slack)
    told = thread(slack, live)
    fabro.resume(run["id"])  # from Fabro's own UI: not a resume from Slack
    fabro._set_status(run["id"], "running")
    fabro.stage(run["id"], "verify", "failed", will_retry=True, failure={"message": "1 test still failing"})
    await bot.follower.sync_all()
    await bot.follower.sync_all(None)
    assert await bot.store.follows() == []
    assert thread(slack, live) == told


async def test_a_resume_does_not_follow_again_in_a_channel_at_its_follow_limit(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.telling.following")
    bot = await start_bot(
        alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/limit.db", fabro_event_stream=False, follow_max=1
    )
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        run = await followed_then_failed(bot, user, fabro, slack)
        other = make_run("running", title="Another run")
        fabro.add(other)
        _, _, url = await user.command(f"follow {other['id']}")
        assert "Following run" in (await user.reply(url))["text"]
        live = next(m for m in slack.posts(CHANNEL) if m.thread_ts is None)  # the failed run's
        await press_resume(user, live)
        await wait_for(lambda: "not followed again" in caplog.text, timeout=30)
        assert resumes(fabro, run["id"]) == 1
    assert [f.run_id for f in await bot.store.follows()] == [other["id"]]
    assert [f.run_id for f in await bot.store.ended_follows(run["id"])] == [run["id"]]


async def test_unfollowing_a_run_whose_follow_ended_leaves_nothing_for_a_resume_to_take_up(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = await followed_then_failed(bot, user, fabro, slack)
    assert [f.channel for f in await bot.store.ended_follows(run["id"])] == [CHANNEL]
    _, _, url = await user.command(f"unfollow {run['id']}")
    await user.reply(url)
    assert await bot.store.ended_follows(run["id"]) == [] and await bot.store.follows() == []


async def test_a_resume_pressed_by_someone_allow_operate_leaves_out_follows_nothing_again(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(
        alert_pace=0.0,
        database_url=f"sqlite:///{tmp_path}/refused.db",
        fabro_event_stream=False,
        allow_operate="owner,admins",
    )
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        run = await followed_then_failed(bot, user, fabro, slack)
        live = card(slack)
        told = thread(slack, live)
        url = await press_resume(user, live)
        said = json.dumps(await user.reply(url, timeout=30))
    assert "ALLOW_OPERATE" in said
    assert resumes(fabro, run["id"]) == 0
    assert await bot.store.follows() == []
    assert [f.channel for f in await bot.store.ended_follows(run["id"])] == [CHANNEL]
    await bot.follower.sync_all(None)
    assert await bot.store.follows() == [] and thread(slack, live) == told


async def test_a_follow_that_ended_before_its_runs_failure_was_read_is_not_ended_again_by_it_after_a_resume(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    """A follow ends when its run is read as ended, even if the run's `run.failed` came just after the
    events it read: taken up again after a resume, that old failure is behind the resume, not an end."""
    run = await followed_then_failed(bot, user, fabro, slack)
    [failed] = [e for e in fabro.events[run["id"]] if e["event"] == "run.failed"]
    with sqlite3.connect(tmp_path / "follow.db") as db:  # ended, its failure not yet read
        db.execute("UPDATE follows SET last_seq = ? WHERE run_id = ?", (failed["seq"] - 1, run["id"]))
    [ended] = await bot.store.ended_follows(run["id"])
    assert ended.last_seq == failed["seq"] - 1
    live = card(slack)
    told = thread(slack, live)

    await press_resume(user, live)
    await wait_for(lambda: "— runnable" in live.text and "followed here" in texts(live), timeout=30)
    await bot.follower.sync_all(None)
    [going_on] = await bot.store.follows(run["id"])  # still followed: the run is at work
    assert going_on.last_seq > failed["seq"] and thread(slack, live) == told  # and nothing told twice
