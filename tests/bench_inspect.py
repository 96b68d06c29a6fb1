"""Benchmark: looking into a run from Slack, over real loopback HTTP against the fake Fabro and fake Slack.

    python tests/bench_inspect.py [--samples 10]

1. Ask Fabro: Fabro's first `assistant_delta` leaves the fake → that text is in the thread's reply
   (a chat.update of it), with every Fabro request taking 50 ms (target: within 1 s).
2. Changes of a run with 200 changed files: signed `/runs changes` → the answer at the
   response_url (target: under 1 s), and the renderer alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bot.app import Bot
from tests.conftest import SlackUser
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SKIP_SLACK_SDK_WARNING", "1")

import aiohttp

from bot.blocks.inspect import changes_message
from bot.fabro.models import Run
from bot.fabro.outputs import RunCommits, RunFiles
from tests.conftest import bot_settings, wait_for
from tests.fakes.runs import make_run

CHANNEL = "C0BENCH"
T = TypeVar("T")


async def with_bot(work: Callable[[Bot, FakeFabro, FakeSlack, SlackUser], Awaitable[T]]) -> T:
    fabro = await FakeFabro().start()
    slack = await FakeSlack().start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = bot_settings(fabro, slack, database_url=f"sqlite:///{tmp}/b.db", alert_channel=CHANNEL)
        bot = Bot(settings, schedule_alerts=False, alert_pace=0.0)
        await bot.start()
        try:
            async with aiohttp.ClientSession() as session:
                return await work(bot, fabro, slack, SlackUser.of(bot, slack, session))
        finally:
            await bot.stop()
            await fabro.stop()
            await slack.stop()


async def first_text(samples: int) -> list[float]:
    async def work(bot: Bot, fabro: FakeFabro, slack: FakeSlack, user: SlackUser) -> list[float]:
        await bot.alerter.cycle()
        fabro.latency = 0.05
        fabro.answer_deltas = ["Because the verify stage ", "ran the old tests."]
        fabro.delta_pause = 0.3
        found: list[float] = []
        for i in range(samples):
            run = make_run("running", title=f"Bench {i}")
            fabro.add(run)
            fabro.sandbox_ready(run["id"])
            fabro.fail(run["id"])
            await bot.alerter.cycle()
            alert = slack.posts(CHANNEL)[-1]
            fabro.deltas_written.clear()
            await user.mention("why?", channel=CHANNEL, thread_ts=alert.ts)
            await wait_for(lambda: fabro.deltas_written, 10, 0.001)
            sent = fabro.deltas_written[0]

            def shown(ts: str = alert.ts) -> list[float]:
                reply = next((m for m in slack.messages if m.thread_ts == ts), None)
                return [
                    c.at
                    for c in slack.calls_to("chat.update")
                    if reply is not None and c.args.get("ts") == reply.ts and "verify stage" in json.dumps(c.args)
                ]

            await wait_for(shown, 10, 0.001)
            found.append(shown()[0] - sent)
            await wait_for(lambda: all(s["active_turn"] is None for s in fabro.sessions.values()), 10)

            # The answer is finished (its last edit keeps the pace too) before the next, or the stop.
            def answered(ts: str = alert.ts) -> bool:
                return done(slack, ts)

            await wait_for(answered, 10)
        return found

    return await with_bot(work)


def done(slack: FakeSlack, thread_ts: str) -> bool:
    """The thread's reply holds the whole answer, no longer being written."""
    reply = next((m for m in slack.messages if m.thread_ts == thread_ts), None)
    return (
        reply is not None
        and "ran the old tests" in json.dumps(reply.blocks)
        and "writing" not in json.dumps(reply.blocks)
    )


async def changes(samples: int) -> tuple[list[float], list[float]]:
    async def work(bot: Bot, fabro: FakeFabro, slack: FakeSlack, user: SlackUser) -> tuple[list[float], list[float]]:
        run = make_run("succeeded", reason="completed", title="Two hundred files")
        fabro.add(run)
        for i in range(200):
            fabro.change(run["id"], f"src/module_{i:03d}/file_{i:03d}.py", added=(i * 7) % 90 + 1, removed=i % 13)
        for i in range(30):
            fabro.commit(run["id"], f"Commit number {i}")
        end_to_end: list[float] = []
        for _ in range(samples):
            started = time.perf_counter()
            _, _, url = await user.command(f"changes {run['id']}")
            await user.reply(url, timeout=10)
            end_to_end.append(time.perf_counter() - started)
        files = RunFiles.model_validate(
            {
                "data": fabro.changed[run["id"]],
                "meta": {"stats": {"additions": 1, "deletions": 1}, "total_changed": 200},
            }
        )
        commits = RunCommits.model_validate({"data": fabro.commit_list[run["id"]]})
        rendering: list[float] = []
        for _ in range(samples):
            started = time.perf_counter()
            changes_message(Run.model_validate(run), files, commits)
            rendering.append(time.perf_counter() - started)
        return end_to_end, rendering

    return await with_bot(work)


def show(name: str, values: list[float], target: str) -> None:
    ms = sorted(v * 1000 for v in values)
    print(f"{name}: median {statistics.median(ms):.1f} ms, worst {ms[-1]:.1f} ms ({target})")


async def main(samples: int) -> None:
    show("Ask Fabro: first delta → text in the thread, Fabro at 50 ms", await first_text(samples), "target < 1000 ms")
    end_to_end, rendering = await changes(samples)
    show("Changes of 200 files: /runs changes → answer", end_to_end, "target < 1000 ms")
    show("Changes of 200 files: rendering alone", rendering, "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10)
    asyncio.run(main(parser.parse_args().samples))
