"""Benchmark: how much the bot adds on top of Fabro for `/runs`, over real loopback HTTP.

    python tests/bench_commands.py [--requests 200] [--latency 0.05]

Fake Fabro answers with injected latency; signed slash commands go to the bot's real
HTTP endpoint. Prints ack latency, end-to-end time (signed POST → response_url post),
the same raw Fabro call, and the ratio of end-to-end to raw (target ≤ 1.3, ack p99 < 500 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SKIP_SLACK_SDK_WARNING", "1")

import aiohttp
import httpx

from bot.app import Bot
from tests.conftest import SlackUser, bot_settings, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(requests: int, latency: float, burst: int) -> None:
    fabro = await FakeFabro(latency=latency).start()
    slack = await FakeSlack().start()
    fabro.add(*[make_run(kind, title=f"Run {i}") for i, kind in enumerate(["blocked", "failed", "running"] * 20)])
    bot = Bot(bot_settings(fabro, slack, fabro_timeout_seconds=10))
    await bot.start()
    text = "blocked sort:elapsed asc limit:10"
    try:
        async with aiohttp.ClientSession() as session:
            user = SlackUser.of(bot, slack, session)
            await user.reply((await user.command(text))[2])  # warm up: auth.test, connections

            acks, ends = [], []
            for _ in range(requests):
                start = time.perf_counter()
                status, _, response_url = await user.command(text)
                acked = time.perf_counter()
                assert status == 200

                def answered(url: str = response_url) -> list[dict[str, Any]]:
                    return slack.responses_to(url)

                await wait_for(answered, 10, interval=0.001)
                arrived = next(r["at"] for r in slack.responses if response_url.endswith(r["token"]))
                acks.append((acked - start) * 1000)
                ends.append((arrived - start) * 1000)

            async def one() -> float:
                start = time.perf_counter()
                await user.command(text)
                return (time.perf_counter() - start) * 1000

            burst_acks = await asyncio.gather(*[one() for _ in range(burst)])

        raw = []
        params = (
            ("status", "blocked"),
            ("sort", "elapsed"),
            ("direction", "asc"),
            ("page[limit]", "10"),
            ("page[offset]", "0"),
        )
        async with httpx.AsyncClient(base_url=fabro.url, headers={"Authorization": f"Bearer {fabro.token}"}) as client:
            await client.get("/api/v1/runs", params=params)
            for _ in range(requests):
                start = time.perf_counter()
                (await client.get("/api/v1/runs", params=params)).raise_for_status()
                raw.append((time.perf_counter() - start) * 1000)
    finally:
        await bot.stop()
        await fabro.stop()
        await slack.stop()

    raw_p50 = statistics.median(raw)
    e2e_p50 = statistics.median(ends)
    print(f"/runs {text!r}, {requests} sequential requests, Fabro latency {latency * 1000:.0f} ms")
    print(f"ack latency          p50 {pct(acks, 50):7.1f} ms   p99 {pct(acks, 99):7.1f} ms")
    print(f"end to end           p50 {e2e_p50:7.1f} ms   p99 {pct(ends, 99):7.1f} ms")
    print(f"raw Fabro call       p50 {raw_p50:7.1f} ms")
    print(f"ratio e2e/raw (p50)      {e2e_p50 / raw_p50:7.2f}      (target ≤ 1.30)")
    print(
        f"ack under a burst of {burst}: p50 {pct(burst_acks, 50):.1f} ms"
        f"   p99 {pct(burst_acks, 99):.1f} ms   (target p99 < 500 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.latency, args.burst))
