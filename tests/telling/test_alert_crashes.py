"""Exactly once across kill -9: the real `fabro-slack-bot run` process is SIGKILLed at each step
of delivery, restarted on the same SQLite file, and every alert is in Slack exactly once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from bot.failpoints import CRASH_AT_ENV
from tests.app.test_cli import COMMAND, _env, fake_env
from tests.conftest import wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack
from tests.store.test_replicas import first_cycle_done

CHANNEL = "C0ALERTS"


async def start_process(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, name: str, **extra: str | None
) -> asyncio.subprocess.Process:
    """The real `run` command on the fakes; a setting given as None is left out."""
    settings = {
        "HOST": "127.0.0.1",
        "PORT": "0",
        "ALERT_CHANNEL": CHANNEL,
        "POLL_INTERVAL_SECONDS": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "LOG_LEVEL": "DEBUG",
    }
    chosen = {k: v for k, v in (settings | extra).items() if v is not None}
    env = _env(fake_env(fabro, slack, **chosen))
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    process = await asyncio.create_subprocess_exec(COMMAND, "run", env=env, stdout=log, stderr=log)
    log.close()
    return process


async def wait_exit(process: asyncio.subprocess.Process, timeout: float = 20) -> int:
    return await asyncio.wait_for(process.wait(), timeout)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await wait_exit(process)


@pytest.mark.parametrize(
    ("crash_at", "failures", "threshold"),
    [
        ("alert.claimed", 1, "5"),  # decided and recorded, not posted
        ("alert.posted", 1, "5"),  # in Slack, not yet recorded as posted
        ("alert.confirmed", 1, "5"),  # recorded as posted
        ("alert.posted", 4, "2"),  # a digest in Slack, not yet recorded
        ("alert.claimed", 4, "2"),  # a storm decided, digest not yet posted
    ],
)
async def test_a_kill_9_at_any_step_of_delivery_neither_loses_nor_duplicates(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, crash_at: str, failures: int, threshold: str
) -> None:
    first = await start_process(
        fabro, slack, tmp_path, "first", ALERT_DIGEST_THRESHOLD=threshold, **{CRASH_AT_ENV: crash_at}
    )
    try:
        await wait_for(lambda: first_cycle_done(fabro), timeout=20)  # history recorded
        runs = [make_run("running", title=f"Crash test {i}") for i in range(failures)]
        fabro.add(*runs)
        for run in runs:
            fabro.fail(run["id"], "boom")
        assert await wait_exit(first) == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
    posted_before = len(slack.posts(CHANNEL))
    assert posted_before == (0 if crash_at == "alert.claimed" else 1)

    second = await start_process(fabro, slack, tmp_path, "second", ALERT_DIGEST_THRESHOLD=threshold)
    try:
        await wait_for(lambda: len(slack.posts(CHANNEL)) >= 1, timeout=20)
        cycles = len(fabro.calls("/api/v1/runs"))
        await wait_for(lambda: len(fabro.calls("/api/v1/runs")) >= cycles + 3, timeout=20)  # a few more cycles
    finally:
        await stop(second)
    assert second.returncode == 0
    posts = slack.posts(CHANNEL)
    assert len(posts) == 1, [p.text for p in posts]
    text = str(posts[0].blocks)
    for run in runs:
        assert run["id"][:10] in text or run["id"] in text
    if crash_at == "alert.posted":
        # The restart found the message by its metadata instead of posting again.
        assert slack.calls_to("conversations.history")
        assert "was already in" in (tmp_path / "second.log").read_text()
    assert slack.violations == []
    assert "Traceback" not in (tmp_path / "second.log").read_text()  # a clean restart and a clean stop


@pytest.mark.parametrize("crash_at", ["follow.claimed", "follow.posted"])
async def test_a_kill_9_of_the_follower_mid_run_neither_loses_nor_repeats_a_reply(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, crash_at: str
) -> None:
    import aiohttp

    from tests.conftest import SlackUser, wait_until
    from tests.store.test_replicas import free_port

    run = make_run("running", title="Long job")
    fabro.add(run)
    fabro.emit(run["id"], "run.started", {})
    port = free_port()
    extra = {"PORT": str(port), "FABRO_EVENT_STREAM": "off", CRASH_AT_ENV: crash_at}
    first = await start_process(fabro, slack, tmp_path, "first", **extra)
    try:
        async with aiohttp.ClientSession() as session:
            user = SlackUser(f"http://127.0.0.1:{port}/slack/events", slack, session)

            async def answers() -> bool:
                try:
                    return (await user.command(f"follow {run['id']}", channel=CHANNEL))[0] == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(answers, timeout=20, interval=0.1)
        await wait_for(lambda: slack.posts(CHANNEL), timeout=10)
        [card] = slack.posts(CHANNEL)
        fabro.stage(run["id"], "verify", "failed", failure={"message": "boom"})
        assert await wait_exit(first) == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
    told = [m for m in slack.messages if m.thread_ts == card.ts]
    assert len(told) == (1 if crash_at == "follow.posted" else 0)

    second = await start_process(fabro, slack, tmp_path, "second", PORT="0", FABRO_EVENT_STREAM="off")
    try:
        await wait_for(lambda: len([m for m in slack.messages if m.thread_ts == card.ts]) >= 1, timeout=20)
        fabro.stage(run["id"], "verify", "retrying", attempt=2, max_attempts=3)
        await wait_for(lambda: len([m for m in slack.messages if m.thread_ts == card.ts]) >= 2, timeout=20)
        cycles = len(fabro.calls("/api/v1/runs"))  # each poll cycle lists the runs once
        await wait_for(lambda: len(fabro.calls("/api/v1/runs")) >= cycles + 3, timeout=20)
    finally:
        await stop(second)
    said = [m.text for m in slack.messages if m.thread_ts == card.ts]
    assert said == [":x: Stage verify failed: boom", ":repeat: Stage verify retrying (attempt 2 of 3)"]
    assert "Traceback" not in (tmp_path / "second.log").read_text()


async def test_after_a_crash_another_apps_message_carrying_the_alerts_key_does_not_suppress_it(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    from bot.blocks.alerts import alert_metadata
    from bot.core.keys import AlertKey
    from bot.store import open_store
    from tests.fakes.slack import Message

    first = await start_process(fabro, slack, tmp_path, "first", **{CRASH_AT_ENV: "alert.claimed"})
    try:
        await wait_for(lambda: first_cycle_done(fabro), timeout=20)
        run = make_run("running", title="Impersonated")
        fabro.add(run)
        fabro.fail(run["id"], "boom")
        assert await wait_exit(first) == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
    store = open_store(f"sqlite:///{tmp_path}/bot.db")
    await store.open()
    [claimed] = await store.alerts_for_run(run["id"])
    await store.close()
    # Another app posts a message with the bot's metadata key for that very alert.
    key = AlertKey.parse(claimed.key.encode())
    assert key is not None
    metadata = alert_metadata(key, run["id"])
    slack.messages.append(Message(CHANNEL, slack._next_ts(), "not the bot", [], metadata, None, bot_id="B0OTHER"))

    second = await start_process(fabro, slack, tmp_path, "second")
    try:
        await wait_for(lambda: [m for m in slack.posts(CHANNEL) if m.bot_id == "B111"], timeout=20)
    finally:
        await stop(second)
    ours = [m for m in slack.posts(CHANNEL) if m.bot_id == "B111"]
    assert len(ours) == 1 and run["id"][:10] in str(ours[0].blocks) + ours[0].text


@pytest.mark.parametrize("crash_at", ["alert.claimed", "alert.posted"])
async def test_a_kill_9_while_telling_a_cost_and_the_days_budget_tells_each_once(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, crash_at: str
) -> None:
    from datetime import UTC, datetime

    from bot.core.records import Subscription
    from bot.store import open_store
    from tests.telling.test_cost_alerts import spend

    costs = "C0COSTS"
    store = open_store(f"sqlite:///{tmp_path}/bot.db")  # the channel asked for `cost` before this start
    await store.open()
    await store.add_subscription(Subscription(0, costs, frozenset({"cost"})))
    await store.close()
    budgets = {"COST_ALERT_USD": "10", "DAILY_BUDGET_USD": "20"}
    first = await start_process(fabro, slack, tmp_path, "first", **budgets, **{CRASH_AT_ENV: crash_at})
    try:
        await wait_for(lambda: first_cycle_done(fabro), timeout=20)
        run = make_run("running", title="Costly and crashing")
        fabro.add(run)
        spend(fabro, run, 25.0)
        assert await wait_exit(first) == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
    assert len(slack.posts(costs)) == (0 if crash_at == "alert.claimed" else 1)

    second = await start_process(fabro, slack, tmp_path, "second", **budgets)
    try:
        await wait_for(lambda: len(slack.posts(costs)) >= 2, timeout=20)
        cycles = len(fabro.calls("/api/v1/runs"))
        await wait_for(lambda: len(fabro.calls("/api/v1/runs")) >= cycles + 3, timeout=20)  # a few more cycles
    finally:
        await stop(second)
    day = datetime.now(UTC).date().isoformat()
    assert sorted(slack.alert_keys(costs)) == sorted([f"budget:{day}", f"cost:{run['id']}"])
    assert slack.posts(CHANNEL) == []  # the default kinds leave cost out
    assert slack.violations == []
    assert "Traceback" not in (tmp_path / "second.log").read_text()
