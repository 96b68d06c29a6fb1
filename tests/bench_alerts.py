"""Benchmark: what the alert cycle costs Fabro, and how long an alert takes to reach Slack.

    python tests/bench_alerts.py [--interval 2] [--samples 20]

Over real loopback HTTP against the fake Fabro and fake Slack, with the SQLite store:
1. Fabro requests per idle cycle with 60, 1,000 and 10,000 runs (target: equal, ≤ 1 per
   watched bucket, i.e. ≤ 3).
2. Fabro requests in a cycle that finds k new failures (k = 1, 5, 30), and Slack posts.
3. Alert latency, status change → Slack post, with the scheduler running every
   `--interval` seconds and the event stream off (expected: about half the interval on
   average, at most one interval plus the cycle's own time), then with Fabro's event
   stream on and a 120 s poll (expected: well under a second).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from bot.app import Bot
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SKIP_SLACK_SDK_WARNING", "1")

from tests.conftest import bot_settings, wait_for
from tests.fakes.runs import make_run

CHANNEL = "C0BENCH"
T = TypeVar("T")
KINDS = ["running", "succeeded", "failed", "blocked", "runnable", "pending"]


async def with_bot(
    runs: int,
    work: Callable[[Bot, FakeFabro, FakeSlack], Awaitable[T]],
    *,
    interval: float | None = None,
    stream: bool = False,
) -> T:
    fabro = await FakeFabro().start()
    slack = await FakeSlack().start()
    fabro.add(*[make_run(KINDS[i % len(KINDS)], title=f"Run {i}") for i in range(runs)])
    with tempfile.TemporaryDirectory() as tmp:
        overrides: dict[str, Any] = {"alert_channel": CHANNEL, "database_url": f"sqlite:///{tmp}/bench.db"}
        if interval is not None:
            overrides["poll_interval_seconds"] = interval
        overrides["fabro_event_stream"] = stream
        bot = Bot(
            bot_settings(fabro, slack, fabro_timeout_seconds=30, **overrides),
            schedule_alerts=interval is not None,
            alert_pace=0.0,
        )
        await bot.start()
        try:
            return await work(bot, fabro, slack)
        finally:
            await bot.stop()
            await fabro.stop()
            await slack.stop()


async def idle_cost(runs: int) -> tuple[int, float]:
    async def work(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> tuple[int, float]:
        await bot.alerter.cycle()  # first start
        await bot.alerter.cycle()  # settles the watermark
        fabro.requests.clear()
        started = time.perf_counter()
        await bot.alerter.cycle()
        return len(fabro.requests), (time.perf_counter() - started) * 1000

    return await with_bot(runs, work)


async def busy_cost(runs: int, k: int) -> tuple[int, int, int]:
    async def work(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> tuple[int, int, int]:
        await bot.alerter.cycle()
        await bot.alerter.cycle()
        fresh = [make_run("running", title=f"New failure {i}") for i in range(k)]
        fabro.add(*fresh)
        for run in fresh:
            fabro.fail(run["id"])
        fabro.requests.clear()
        report = await bot.alerter.cycle()
        return len(fabro.requests), report.posted, report.claimed

    return await with_bot(runs, work)


async def latency(interval: float, samples: int, *, stream: bool = False) -> list[float]:
    async def work(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> list[float]:
        await wait_for(lambda: fabro.calls("/api/v1/runs"), timeout=10)
        if stream:
            live = bot.live
            assert live is not None
            await wait_for(lambda: live.connected, timeout=10)
        await asyncio.sleep(min(interval, 3) * 1.5)
        seconds: list[float] = []
        for i in range(samples):
            await asyncio.sleep(random.uniform(0, min(interval, 3)))
            run = make_run("running", title=f"Latency {i}")
            fabro.add(run)
            before = len(slack.posts(CHANNEL))
            changed = time.perf_counter()
            fabro.fail(run["id"])

            def posted_since(before: int = before) -> bool:
                return len(slack.posts(CHANNEL)) > before

            await wait_for(posted_since, timeout=interval * 3 + 5, interval=0.005)
            posted = next(c.at for c in reversed(slack.calls_to("chat.postMessage")))
            seconds.append(posted - changed)
        return seconds

    return await with_bot(60, work, interval=interval, stream=stream)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(interval: float, samples: int) -> None:
    print("Fabro requests per idle cycle (target: the same at every size, ≤ 3 watched buckets)")
    for runs in (60, 1_000, 10_000):
        requests, ms = await idle_cost(runs)
        print(f"  {runs:>6} runs   {requests} request(s)   cycle {ms:6.1f} ms")
    print("A cycle that finds k new failures (1,000 runs)")
    for k in (1, 5, 30):
        requests, posts, alerts = await busy_cost(1_000, k)
        print(f"  k = {k:>2}   {requests:>2} Fabro requests   {alerts} alerts in {posts} Slack post(s)")
    seconds = await latency(interval, samples)
    print(f"Alert latency, status change → Slack post, polling every {interval:g} s, no stream ({samples} samples)")
    print(
        f"  mean {statistics.mean(seconds):.2f} s   p50 {pct(seconds, 50):.2f} s   max {max(seconds):.2f} s"
        f"   (expected ≈ {interval / 2:g} s mean, ≤ {interval:g} s + cycle time)"
    )
    seconds = await latency(120, samples, stream=True)
    print(f"Alert latency with Fabro's event stream, polling every 120 s ({samples} samples)")
    print(
        f"  mean {statistics.mean(seconds) * 1000:.0f} ms   p50 {pct(seconds, 50) * 1000:.0f} ms"
        f"   max {max(seconds) * 1000:.0f} ms   (target: within 3 s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.interval, args.samples))
