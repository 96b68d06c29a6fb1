"""Alerts from Fabro's event stream: seconds, not a poll interval, and the stream dropping
or being refused costs nothing but speed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import Bot
from tests.conftest import StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

CHANNEL = "C0LIVE"
# How long the stream may take, on a loaded machine: far below the two-minute poll, so only the
# stream can be this quick, and far above what it takes (well under a second) when idle.
SECONDS = 15


async def live_bot(start_bot: StartBot, tmp_path: Path, **overrides: Any) -> Bot:
    bot = await start_bot(
        schedule_alerts=True,
        alert_pace=0.0,
        alert_channel=CHANNEL,
        poll_interval_seconds=120,
        database_url=f"sqlite:///{tmp_path}/live.db",
        **overrides,
    )
    await wait_for(lambda: bot.live is not None and bot.live.connected, timeout=10)
    return bot


async def test_a_failure_is_alerted_within_seconds_with_a_two_minute_poll(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    await live_bot(start_bot, tmp_path)
    run = make_run("running", title="Live failure")
    fabro.add(run)
    started = time.monotonic()
    fabro.fail(run["id"], "boom")
    await wait_for(lambda: slack.alert_keys(CHANNEL), timeout=SECONDS)
    assert time.monotonic() - started < SECONDS
    assert slack.alert_keys(CHANNEL) == [fabro.failed_key(run["id"])]
    assert "boom" in str(slack.posts(CHANNEL)[0].blocks)


async def test_questions_and_answers_flow_through_the_stream(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    await live_bot(start_bot, tmp_path)
    run = make_run("running")
    fabro.add(run)
    fabro.ask(
        run["id"], {"id": "q-1", "text": "Ship it?", "question_type": "yes_no", "options": [], "allow_freeform": False}
    )
    await wait_for(lambda: slack.alert_keys(CHANNEL), timeout=SECONDS)
    [post] = slack.posts(CHANNEL)
    fabro.answer(run["id"], "q-1", {"kind": "yes"})
    await wait_for(lambda: post.edits == 1, timeout=SECONDS)
    assert "Answered by grace: Yes" in str(post.blocks)


async def test_the_stream_dropping_is_survived_and_what_happened_meanwhile_is_caught_up(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await live_bot(start_bot, tmp_path)
    live = bot.live
    assert live is not None
    fabro.fail_next(503, count=3, path_prefix="/api/v1/attach")  # Fabro restarting: refused a few times
    fabro.drop_streams()
    await wait_for(lambda: not live.connected, timeout=SECONDS)
    missed = make_run("running", title="Failed while the stream was down")
    fabro.add(missed)
    fabro.fail(missed["id"])
    # Back: the reconnect is followed by a reconciling poll, which finds what the stream missed.
    await wait_for(lambda: live.connected, timeout=15)
    await wait_for(lambda: fabro.failed_key(missed["id"]) in slack.alert_keys(CHANNEL), timeout=5)
    after = make_run("running", title="Failed after the reconnect")
    fabro.add(after)
    fabro.fail(after["id"])
    await wait_for(lambda: fabro.failed_key(after["id"]) in slack.alert_keys(CHANNEL), timeout=SECONDS)
    assert sorted(slack.alert_keys(CHANNEL)) == sorted([fabro.failed_key(missed["id"]), fabro.failed_key(after["id"])])
    assert fabro.stream_connections >= 2


async def test_approvals_still_come_from_the_poll_because_the_stream_never_carries_them(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await live_bot(start_bot, tmp_path)
    child = make_run("submitted")
    fabro.add(child)
    fabro.request_approval(child["id"])
    await bot.scheduled_cycle()
    assert slack.alert_keys(CHANNEL) == [f"approval:{child['id']}"]


async def test_the_stream_can_be_turned_off(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(
        schedule_alerts=True,
        alert_channel=CHANNEL,
        database_url=f"sqlite:///{tmp_path}/off.db",
        fabro_event_stream="off",
    )
    await wait_for(lambda: fabro.calls("/api/v1/runs"), timeout=5)
    assert bot.live is None and fabro.calls("/api/v1/attach") == []


async def test_a_stream_whose_body_cannot_be_decoded_is_logged_once_and_reconnected(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await live_bot(start_bot, tmp_path)
    live = bot.live
    assert live is not None
    for _ in range(3):  # gzip promised, garbage sent: every reconnection meets it again
        fabro.answer_next(
            200,
            b"data: not gzip at all\n\n",
            {"Content-Encoding": "gzip", "Content-Type": "text/event-stream"},
            path_prefix="/api/v1/attach",
        )
    fabro.drop_streams()
    await wait_for(lambda: not fabro.faults, timeout=15)  # it kept trying, through every broken answer
    await wait_for(lambda: live.connected and fabro.streams, timeout=15)  # and came back
    warnings = [
        r for r in caplog.records if "event stream is unavailable" in r.getMessage() and r.levelname == "WARNING"
    ]
    assert len(warnings) == 1 and "DecodingError" in warnings[0].getMessage()
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])
    await wait_for(lambda: slack.alert_keys(CHANNEL) == [fabro.failed_key(run["id"])], timeout=SECONDS)


async def test_the_connected_gauge_drops_while_the_stream_is_broken(
    start_bot: StartBot, fabro: FakeFabro, tmp_path: Path
) -> None:
    bot = await live_bot(start_bot, tmp_path)
    assert bot.live is not None
    fabro.answer_next(200, b"\x00" * 10, {"Content-Encoding": "gzip"}, path_prefix="/api/v1/attach")
    fabro.fail_next(503, count=50, path_prefix="/api/v1/attach")
    fabro.drop_streams()
    await wait_for(lambda: b"fabro_bot_event_stream_connected 0.0" in bot.metrics.render(), timeout=5)
