"""Stopping `fabro-slack-bot run` in Socket Mode: a SIGTERM at any moment of its life (connecting,
just ready, answering someone) ends the real process within its deadline, with status 0, work in
flight finished or cancelled cleanly, and nothing left behind: no traceback, no pending task, no
unclosed session."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from bot.app import Bot
from bot.telling.engine import CycleReport
from tests.app.test_cli import COMMAND, _env, fake_env
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack
from tests.listeners.test_socket_mode import command_payload

# What a shutdown that left something behind, or hit a closed store, prints.
LEFT_BEHIND = (
    "Traceback",
    "Task was destroyed but it is pending",
    "Task exception was never retrieved",
    "Unclosed client session",
    "Unclosed connector",
    "the store is not open",
    "did not stop within",
)
CHANNEL = "C0ALERTS"
DEADLINE = 20.0  # seconds from SIGTERM to exit: the grace given below, and the rest, with room for a loaded machine
REPEATS = 3


async def start_socket_mode(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, **extra: str
) -> tuple[asyncio.subprocess.Process, Path]:
    log = tmp_path / f"run-{len(list(tmp_path.glob('run-*.log')))}.log"
    settings = {
        "SLACK_APP_TOKEN": slack.app_token,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "SHUTDOWN_GRACE_SECONDS": "5",
        "LOG_LEVEL": "DEBUG",
    }
    env = _env(fake_env(fabro, slack, **(settings | extra)))
    with open(log, "wb") as out:
        process = await asyncio.create_subprocess_exec(COMMAND, "run", env=env, stdout=out, stderr=out)
    return process, log


async def stop_cleanly(process: asyncio.subprocess.Process, log: Path) -> str:
    """SIGTERM now; the process must end within the deadline, with 0, having left nothing behind."""
    process.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.wait_for(process.wait(), DEADLINE)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("no exit within the deadline after SIGTERM:\n" + log.read_text()) from None
    text = log.read_text()
    assert code == 0, text
    assert [line for line in text.splitlines() if any(mark in line for mark in LEFT_BEHIND)] == [], text
    assert "shutting down" in text
    return text


@pytest.mark.parametrize("attempt", range(REPEATS))
async def test_a_sigterm_while_connecting_to_slack_stops_the_start_and_exits_cleanly(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, attempt: int
) -> None:
    slack.hang["apps.connections.open"] = 30  # Slack does not answer: the start waits on it
    process, log = await start_socket_mode(fabro, slack, tmp_path)
    await wait_for(lambda: slack.calls_to("apps.connections.open"), timeout=30)
    text = await stop_cleanly(process, log)
    assert "ready:" not in text and "stopping during startup" in text


@pytest.mark.parametrize("attempt", range(REPEATS))
async def test_a_sigterm_right_as_it_says_ready_exits_cleanly(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, attempt: int
) -> None:
    fabro.add(make_run("failed", title="Failed before the bot started"))
    process, log = await start_socket_mode(fabro, slack, tmp_path, ALERT_CHANNEL=CHANNEL)
    await wait_for(lambda: " ready: Socket Mode" in log.read_text(), timeout=30, interval=0.002)
    await stop_cleanly(process, log)


@pytest.mark.parametrize("attempt", range(REPEATS))
async def test_a_sigterm_while_a_command_is_being_answered_lets_the_answer_reach_slack(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, attempt: int
) -> None:
    fabro.add(make_run("failed", title="Answered while stopping"))
    process, log = await start_socket_mode(fabro, slack, tmp_path)
    await wait_for(lambda: " ready: Socket Mode" in log.read_text(), timeout=30)
    await slack.wait_for_socket()
    slack.respond_delay = 1.0  # the answer is on its way when the signal comes
    payload, response_url = command_payload(slack, "failed")
    envelope = await slack.send_envelope("slash_commands", payload)
    await wait_for(lambda: slack.ack_for(envelope) and slack.responding, timeout=15)
    await stop_cleanly(process, log)
    assert "Answered while stopping" in json.dumps(slack.responses_to(response_url)[0]["blocks"])


async def test_an_answer_still_on_its_way_at_the_end_of_the_grace_is_cancelled_cleanly(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    fabro.add(make_run("failed", title="Too slow to finish"))
    process, log = await start_socket_mode(fabro, slack, tmp_path, SHUTDOWN_GRACE_SECONDS="1")
    await wait_for(lambda: " ready: Socket Mode" in log.read_text(), timeout=30)
    await slack.wait_for_socket()
    slack.respond_delay = 30.0  # longer than the grace: the answer cannot finish
    payload, response_url = command_payload(slack, "failed")
    envelope = await slack.send_envelope("slash_commands", payload)
    await wait_for(lambda: slack.ack_for(envelope) and slack.responding, timeout=15)
    text = await stop_cleanly(process, log)
    # The answer, and on a loaded machine perhaps the first alert cycle (begun at ready, alongside).
    assert re.search(r"stopped [12] piece\(s\) of work still running after 1 s", text), text
    assert slack.responses_to(response_url) == []


async def cycle_posting_when_stopped(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, *, grace: float, post_takes: float
) -> tuple[asyncio.Task[CycleReport | None], Bot]:
    """A bot whose alert cycle is posting a failure (Slack slow to answer) when `stop` begins."""
    bot = await start_bot(
        alert_channel=CHANNEL,
        alert_pace=0.0,
        database_url=f"sqlite:///{tmp_path}/bot.db",
        shutdown_grace_seconds=grace,
    )
    await bot.scheduled_cycle()  # the first: what failed before is history
    run = make_run("running", title="Failing as the bot stops")
    fabro.add(run)
    fabro.fail(run["id"], "boom")
    slack.latency["chat.postMessage"] = post_takes
    cycle = asyncio.create_task(bot.scheduled_cycle())
    await wait_for(lambda: slack.calls_to("chat.postMessage"), timeout=10)
    await bot.stop()
    return cycle, bot


async def test_an_alert_being_posted_when_the_bot_stops_is_posted_and_recorded_before_the_store_closes(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cycle, _ = await cycle_posting_when_stopped(start_bot, fabro, slack, tmp_path, grace=10.0, post_takes=1.0)
    assert cycle.done() and not cycle.cancelled()  # stop waited for it
    report = cycle.result()
    assert report is not None and report.posted == 1
    assert len(slack.posts(CHANNEL)) == 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    # Recorded as posted: a new start finds it in the store and posts nothing again.
    slack.latency.clear()
    again = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/bot.db")
    await again.scheduled_cycle()
    assert len(slack.posts(CHANNEL)) == 1


async def test_an_alert_cycle_still_posting_after_the_grace_is_cancelled_without_touching_the_closed_store(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cycle, _ = await cycle_posting_when_stopped(start_bot, fabro, slack, tmp_path, grace=0.5, post_takes=30.0)
    assert cycle.cancelled()
    assert any("stopped 1 piece(s) of work still running after 0.5 s" in r.getMessage() for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    # Claimed, never answered: the next start looks for it in Slack, then posts it, once.
    slack.latency.clear()
    again = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/bot.db")
    await again.scheduled_cycle()
    assert len(slack.alert_keys(CHANNEL)) == 1


async def test_an_envelope_being_dispatched_at_sigterm_is_still_acknowledged(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    fabro.add(make_run("failed", title="Acknowledged while stopping"))
    process, log = await start_socket_mode(fabro, slack, tmp_path)
    await wait_for(lambda: " ready: Socket Mode" in log.read_text(), timeout=30)
    await slack.wait_for_socket()
    slack.latency["auth.test"] = 1.0  # Bolt asks who it is before its first dispatch: slowly, here
    asked = len(slack.calls_to("auth.test"))
    payload, response_url = command_payload(slack, "failed")
    envelope = await slack.send_envelope("slash_commands", payload)
    await wait_for(lambda: len(slack.calls_to("auth.test")) > asked, timeout=15)
    assert slack.ack_for(envelope) is None  # not acknowledged yet when the signal comes
    await stop_cleanly(process, log)
    assert slack.ack_for(envelope) is not None
    assert "Acknowledged while stopping" in json.dumps(slack.responses_to(response_url)[0]["blocks"])


async def test_a_reply_being_written_after_its_ack_is_waited_for_by_stop(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    """Bolt runs a listener's work after the ack in a task it keeps no handle to; the bot holds it
    through hooks on Bolt's listener runner. Were Bolt to stop calling them (or to replace the
    runner), stop would return with the reply still waiting on Fabro: this fails then, at once."""
    fabro.add(make_run("failed", title="Answered before the store closed"))
    bot = await start_bot(database_url=f"sqlite:///{tmp_path}/bot.db", shutdown_grace_seconds=30.0)
    fabro.latency = 1.0  # Fabro is slow (below the client timeout): the reply is still being written when stop begins
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        status, _, response_url = await user.command("failed")
        assert status == 200  # acknowledged: what is left runs in Bolt's own task
        await wait_for(lambda: fabro.calls("/api/v1/runs"), timeout=15)
        assert len(bot.in_flight) == 1  # the listener's work, held from its start
        await bot.stop()
    # Already there when stop returns: stop waited for it rather than closing Fabro's client under it.
    [reply] = slack.responses_to(response_url)
    assert "Answered before the store closed" in json.dumps(reply["blocks"])
    assert len(bot.in_flight) == 0
