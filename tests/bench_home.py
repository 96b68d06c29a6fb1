"""Benchmark: the Home tab's publish latency, over real loopback HTTP against the fake Fabro
(50 ms per request) and fake Slack, with 1,000 runs known to the bot.

    python tests/bench_home.py [--samples 50] [--runs 1000] [--waiting 100]

Measures `app_home_opened` (a real Events API request) → `views.publish` received by Slack, for
a linked person, p50 and p99 (target: within a second). The bot's index is filled by one alert
cycle over all the runs first, as the poller fills it in production.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SKIP_SLACK_SDK_WARNING", "1")

import aiohttp

from bot.app import Bot
from tests.conftest import SlackUser, bot_settings, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

ADA = "U123ADA"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--waiting", type=int, default=100)
    args = parser.parse_args()
    fabro = await FakeFabro().start()
    slack = await FakeSlack().start()
    start = datetime.now(UTC) - timedelta(days=2)
    logins = ["octocat", "grace", "hopper", "linus"]
    runs = []
    for i in range(args.runs):
        created_by = {"kind": "user", "identity": {"issuer": "github", "subject": str(i)}, "login": logins[i % 4]}
        kind = "succeeded" if i >= args.waiting else "running"
        runs.append(make_run(kind, title=f"Run {i}", created=start + timedelta(minutes=i), created_by=created_by))
    fabro.add(*runs)
    for run in runs[: args.waiting]:
        fabro.request_approval(run["id"])
    with tempfile.TemporaryDirectory() as tmp:
        settings = bot_settings(fabro, slack, database_url=f"sqlite:///{tmp}/home.db", user_links="octocat=U123ADA")
        bot = Bot(settings, schedule_alerts=False, alert_pace=0.0)
        await bot.start()
        try:
            await bot.alerter.cycle()  # the index learns every run
            fabro.latency = 0.050
            timings = []
            async with aiohttp.ClientSession() as session:
                user = SlackUser.of(bot, slack, session)
                for _ in range(args.samples):
                    slack.homes.clear()
                    started = time.perf_counter()
                    await user.open_home(ADA)
                    await wait_for(lambda: ADA in slack.homes, 10, 0.001)
                    timings.append(time.perf_counter() - started)
            blocks = len(slack.homes[ADA]["blocks"])
        finally:
            await bot.stop()
            await fabro.stop()
            await slack.stop()
    print(f"Home publish, {args.runs} runs ({args.waiting} waiting), Fabro latency 50 ms, {args.samples} opens:")
    print(
        f"  p50 {percentile(timings, 50) * 1000:.0f} ms, p99 {percentile(timings, 99) * 1000:.0f} ms,"
        f" mean {statistics.mean(timings) * 1000:.0f} ms (target: p99 < 1000 ms); {blocks} blocks"
    )


if __name__ == "__main__":
    asyncio.run(main())
