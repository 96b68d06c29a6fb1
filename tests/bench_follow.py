"""Benchmark: following a run, over real loopback HTTP against the fake Fabro and fake Slack.

    python tests/bench_follow.py [--samples 20]

1. Latency, stage failure in Fabro → the reply in the live card's thread, with Fabro's event
   stream on (target: within 2 s), and → the card's next edit.
2. Fabro requests of an idle cycle with a followed run, stream off (target: the poll's one
   listing, nothing per followed run), and of an idle followed run while the stream is open
   (target: 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bot.app import Bot
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SKIP_SLACK_SDK_WARNING", "1")

from tests.conftest import bot_settings, wait_for
from tests.fakes.runs import make_run

CHANNEL = "C0FOLLOW"
T = TypeVar("T")


async def followed(stream: bool, work: Callable[[Bot, FakeFabro, FakeSlack, str, str], Awaitable[T]]) -> T:
    fabro = await FakeFabro().start()
    slack = await FakeSlack().start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = bot_settings(fabro, slack, database_url=f"sqlite:///{tmp}/f.db", fabro_event_stream=stream)
        bot = Bot(settings, schedule_alerts=False, alert_pace=0.0)
        await bot.start()
        try:
            await bot.scheduled_cycle()
            if stream and bot.live is not None:
                await bot.live.start()  # followed runs ride Fabro's global event stream
                await wait_for(lambda: bot.live is not None and bot.live.connected, timeout=5)
            run = make_run("running", title="Benchmark run")
            fabro.add(run)
            fabro.emit(run["id"], "run.started", {})
            follow = await bot.follower.follow(run["id"], channel=CHANNEL, user_id="U0BENCH")
            await bot.follower.sync_all()
            return await work(bot, fabro, slack, run["id"], follow.ts)
        finally:
            await bot.stop()
            await fabro.stop()
            await slack.stop()


async def latency(samples: int) -> tuple[list[float], list[float]]:
    async def work(
        bot: Bot, fabro: FakeFabro, slack: FakeSlack, run_id: str, card_ts: str
    ) -> tuple[list[float], list[float]]:
        bot.follower.editor.spacing = 0  # measure the edit itself, not the coalescing
        to_reply: list[float] = []
        to_card: list[float] = []
        card = next(m for m in slack.messages if m.ts == card_ts)
        for i in range(samples):
            replies = len([m for m in slack.messages if m.thread_ts == card_ts])
            edits = card.edits
            started = time.perf_counter()
            fabro.stage(run_id, f"stage-{i}", "failed", failure={"message": f"failure {i}"})

            def replied(r: int = replies) -> bool:
                return len([m for m in slack.messages if m.thread_ts == card_ts]) > r

            def edited(e: int = edits) -> bool:
                return card.edits > e

            await wait_for(replied, 5, 0.001)
            to_reply.append(time.perf_counter() - started)
            await wait_for(edited, 5, 0.001)
            to_card.append(time.perf_counter() - started)
        return to_reply, to_card

    return await followed(True, work)


async def idle_requests(stream: bool) -> float:
    async def work(bot: Bot, fabro: FakeFabro, slack: FakeSlack, run_id: str, card_ts: str) -> float:
        fabro.requests.clear()
        if stream:
            await asyncio.sleep(2.0)  # the stream is open; nothing happens
            return len(fabro.requests)
        for _ in range(10):
            await bot.scheduled_cycle()
        return len(fabro.requests) / 10

    return await followed(stream, work)


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, worst {max(values) * 1000:.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    to_reply, to_card = await latency(args.samples)
    print(f"stage failure → thread reply, stream on: {ms(to_reply)} (target < 2000 ms)")
    print(f"stage failure → live card edited, stream on: {ms(to_card)}")
    print(
        f"Fabro requests per idle poll cycle with a followed run, stream off: {await idle_requests(False):.1f}"
        " (target 1: the listing, nothing per followed run)"
    )
    print(f"Fabro requests by an idle followed run over 2 s, stream on: {await idle_requests(True):.0f} (target 0)")


if __name__ == "__main__":
    asyncio.run(main())
