"""A run's log uploaded exactly once across kill -9: the real `fabro-slack-bot run` process is SIGKILLed
between claiming the upload and recording it, restarted on the same SQLite file, and the same click
delivered again uploads the log once in all."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.failpoints import CRASH_AT_ENV
from tests.conftest import SlackUser, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack, Message
from tests.store.test_replicas import first_cycle_done, free_port
from tests.telling.test_alert_crashes import CHANNEL, start_process, stop, wait_exit


async def click_logs(slack: FakeSlack, port: int, alert: Message) -> int:
    """The Logs button of the alert, pressed by the same person at the same instant (one intent)."""
    block = next(b for b in alert.blocks if b.get("block_id", "").startswith("inspect:"))
    async with aiohttp.ClientSession() as session:
        user = SlackUser(f"http://127.0.0.1:{port}/slack/events", slack, session)
        payload, _ = user.action_payload(
            {"action_id": "steer:logs", "value": "logs", "action_ts": "1700000009.000001"},
            block_id=block["block_id"],
            channel=CHANNEL,
            message_ts=alert.ts,
            ephemeral=False,
        )
        try:
            status, _ = await user.post(urlencode({"payload": json.dumps(payload)}))
        except aiohttp.ServerDisconnectedError:
            return 0  # the process died before its acknowledgement left
        return status


@pytest.mark.parametrize("crash_at", ["upload.claimed", "upload.posted"])
async def test_a_kill_9_mid_upload_neither_loses_nor_repeats_the_log(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, crash_at: str
) -> None:
    port = free_port()
    first = await start_process(fabro, slack, tmp_path, "first", PORT=str(port), **{CRASH_AT_ENV: crash_at})
    try:
        await wait_for(lambda: first_cycle_done(fabro), timeout=20)
        run = make_run("running", title="Crash test")
        fabro.add(run)
        fabro.logs[run["id"]] = b"the whole log\n"
        fabro.fail(run["id"], "boom")
        await wait_for(lambda: slack.posts(CHANNEL), timeout=20)
        [alert] = slack.posts(CHANNEL)
        assert await click_logs(slack, port, alert) in (200, 0)
        assert await wait_exit(first) == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
    assert len(slack.shared_files(CHANNEL)) == (0 if crash_at == "upload.claimed" else 1)

    second = await start_process(fabro, slack, tmp_path, "second", PORT=str(port))
    try:
        # A fresh process imports the whole bot first: on a loaded machine that alone can take seconds.
        await wait_for(
            lambda: (tmp_path / "second.log").exists() and "listening" in (tmp_path / "second.log").read_text(),
            timeout=20,
        )
        looked = len(slack.calls_to("conversations.replies"))
        assert await click_logs(slack, port, alert) == 200
        # The restart looks for the file in the thread before it would upload it again…
        await wait_for(lambda: len(slack.calls_to("conversations.replies")) > looked, timeout=20)
        await wait_for(lambda: slack.shared_files(CHANNEL), timeout=20)
        await asyncio.sleep(1.0)  # …and nothing more comes
    finally:
        await stop(second)
    [(carrier, shared)] = slack.shared_files(CHANNEL)
    assert carrier.thread_ts == alert.ts and slack.uploads[shared["id"]]["content"] == b"the whole log\n"
    assert "Traceback" not in (tmp_path / "second.log").read_text()
