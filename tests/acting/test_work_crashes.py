"""Exactly one run per confirmation across kill -9: the real `fabro-slack-bot run` process is
SIGKILLed after Fabro created the run (`run.created`) and after Fabro started it (`action.acted`),
restarted on the same SQLite file, and the run is started (once), owned, followed and told about."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import aiohttp
import pytest

from bot.failpoints import CRASH_AT_ENV
from tests.conftest import SlackUser, wait_for, wait_until
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack
from tests.store.test_replicas import free_port
from tests.telling.test_alert_crashes import start_process, stop, wait_exit

CHANNEL = "C0ALERTS"
WORK = {
    "REPOSITORIES": "acme/api",
    "ALLOW_ROUTE": "*",
    "ALLOW_START": "*",
    "FABRO_EVENT_STREAM": "off",
    "FABRO_TIMEOUT_SECONDS": "1",
}


@pytest.mark.parametrize(("crash_at", "left"), [("run.created", "submitted"), ("action.acted", "runnable")])
async def test_a_kill_9_between_create_and_start_still_makes_exactly_one_started_run(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, crash_at: str, left: str
) -> None:
    port = free_port()
    first = await start_process(fabro, slack, tmp_path, "first", PORT=str(port), **WORK, **{CRASH_AT_ENV: crash_at})
    try:
        async with aiohttp.ClientSession() as session:
            user = SlackUser(f"http://127.0.0.1:{port}/slack/events", slack, session)

            async def answers() -> bool:
                try:
                    return (await user.command("setup repo:acme/api", channel=CHANNEL))[0] == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(answers, timeout=20, interval=0.1)
            _, _, url = await user.command("new make the flaky login test deterministic", channel=CHANNEL)
            card = await user.reply(url, timeout=10)
            start = next(
                e
                for b in card["blocks"]
                if b["type"] == "actions"
                for e in b["elements"]
                if e["text"]["text"] == "Start"
            )
            with contextlib.suppress(aiohttp.ClientError):  # the process may die while answering
                await user.click(
                    {"action_id": start["action_id"], "value": start["value"]}, block_id="work:buttons", channel=CHANNEL
                )
        assert await wait_exit(first) == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
    [run] = [r for r in fabro.runs.values() if r["id"] in fabro.manifests]
    assert run["lifecycle"]["status"]["kind"] == left

    second = await start_process(fabro, slack, tmp_path, "second", PORT="0", POLL_INTERVAL_SECONDS="1", **WORK)
    try:
        # The dead process's record is taken over once it is older than a start can take, and finished.
        await wait_for(lambda: run["lifecycle"]["status"]["kind"] == "runnable", timeout=30)
        await wait_for(lambda: any(m.text.startswith("Started run") for m in slack.posts(CHANNEL)), timeout=30)
        await wait_for(lambda: len(slack.posts(CHANNEL)) >= 2, timeout=30)  # the note and the live card
    finally:
        await stop(second)
    assert [r["id"] for r in fabro.runs.values() if r["id"] in fabro.manifests] == [run["id"]]
    assert len(fabro.calls("/api/v1/runs", method="POST")) == 1
    # Started once: by the first process before it died, or by the second after it.
    assert len(fabro.calls(f"/api/v1/runs/{run['id']}/start", method="POST")) == 1
    assert "Traceback" not in (tmp_path / "second.log").read_text()
    assert run["labels"]["slack_user"] == "U123ADA"
