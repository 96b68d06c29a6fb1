"""The daily picture: /runs stats for each window in the caller's time zone, and the scheduled
summary, posted once per day and channel across restarts and caught up after downtime."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.app import Bot
from bot.blocks.limits import problems
from bot.blocks.stats import PARTIAL, stats_message
from bot.core.stats import Window, bounds, due_day
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.telling.daily import CACHE_FOR, Daily
from tests.conftest import SlackUser, StartBot
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import iso, make_run
from tests.fakes.slack import FakeSlack

CHANNEL = "C0DAILY"
NOW = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)  # today, 15:00 UTC


def texts(blocks: list[dict[str, Any]]) -> str:
    """Every text of a message's blocks, as a person reads them."""
    found = []
    for block in blocks:
        found.append((block.get("text") or {}).get("text", ""))
        found += [f["text"] for f in block.get("fields") or []]
        found += [str(e.get("text", "")) for e in block.get("elements") or []]
    return "\n".join(found)


def finished(
    kind: str,
    ended: datetime,
    *,
    reason: str | None = None,
    cost: int | None = 1_000_000,
    took_ms: int = 60_000,
    title: str = "Run",
) -> dict[str, Any]:
    run = make_run(kind, reason=reason, title=title, created=ended - timedelta(hours=1))
    run["timestamps"]["completed_at"] = run["timestamps"]["last_event_at"] = iso(ended)
    run["billing"] = {"total_usd_micros": cost} if cost is not None else None
    run["timing"]["wall_time_ms"] = took_ms
    return run


def test_windows_are_days_in_the_persons_time_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")  # UTC+9: 15:00 UTC is midnight in Tokyo
    start, end = bounds(Window.TODAY, NOW, tokyo)
    assert start.astimezone(tokyo).hour == 0 and end == NOW and NOW - start == timedelta(hours=0)
    start, end = bounds(Window.YESTERDAY, NOW, tokyo)
    assert end - start == timedelta(days=1) and end.astimezone(tokyo).hour == 0
    start, end = bounds(Window.WEEK, NOW, ZoneInfo("UTC"))
    assert start == NOW.replace(hour=0) - timedelta(days=6) and end == NOW


def test_a_summary_is_due_from_its_hour_that_day_and_not_before_it_was_set() -> None:
    utc = ZoneInfo("UTC")
    set_at = NOW - timedelta(days=3)
    assert due_day("09:00", utc, NOW, set_at) == NOW.date()
    assert due_day("16:00", utc, NOW, set_at) is None  # later today
    assert due_day("09:00", utc, NOW, NOW - timedelta(hours=1)) is None  # set after today's 09:00: from tomorrow
    assert due_day("09:00", ZoneInfo("America/Los_Angeles"), NOW, set_at) is None  # 07:00 there


async def stats_of(start_bot: StartBot, slack: FakeSlack, text: str, *, now: datetime = NOW) -> dict[str, Any]:
    bot = await start_bot(clock=lambda: now)
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        status, _, url = await user.command(text)
        assert status == 200
        return await user.reply(url)


@pytest.fixture
def a_day(fabro: FakeFabro) -> None:
    today = NOW.replace(hour=0)
    fabro.add(
        finished("succeeded", NOW - timedelta(hours=2), cost=2_500_000, took_ms=3_600_000, title="Slow and costly"),
        finished("succeeded", NOW - timedelta(hours=3), cost=None, title="No cost"),
        finished("failed", NOW - timedelta(hours=4), title="Broke"),
        finished("failed", NOW - timedelta(hours=5), reason="cancelled", title="Stopped"),
        finished("failed", NOW - timedelta(hours=6), reason="approval_denied", title="Denied"),
        finished("succeeded", today - timedelta(hours=3), cost=4_000_000, title="Yesterday's"),
        finished("failed", today - timedelta(days=3), title="Days ago"),
        finished("succeeded", today - timedelta(days=10), title="Long ago"),
    )
    blocked = make_run("blocked", title="Asks something", created=NOW - timedelta(hours=9))
    blocked["timestamps"]["last_event_at"] = iso(NOW - timedelta(hours=8))
    approval = make_run("pending", title="Needs approval", created=NOW - timedelta(hours=1))
    fabro.add(blocked, approval, make_run("running", title="Busy"))


@pytest.mark.usefixtures("a_day")
@pytest.mark.parametrize(
    ("text", "succeeded", "failed", "cancelled", "cost"),
    [
        ("stats", 2, 1, 2, "$5.50"),  # today: 2.50 + (none) + 1 + 1 + 1
        ("stats yesterday", 1, 0, 0, "$4.00"),
        ("stats week", 3, 2, 2, "$10.50"),
    ],
)
async def test_stats_counts_each_window_by_outcome_with_cost(
    start_bot: StartBot, slack: FakeSlack, text: str, succeeded: int, failed: int, cancelled: int, cost: str
) -> None:
    slack.time_zones["U123ADA"] = "UTC"
    reply = await stats_of(start_bot, slack, text)
    assert reply["response_type"] == "ephemeral"
    fields = [f["text"] for b in reply["blocks"] if b.get("fields") for f in b["fields"]]
    assert fields[:4] == [
        f"*Succeeded*\n{succeeded}",
        f"*Failed*\n{failed}",
        f"*Cancelled or denied*\n{cancelled}",
        fields[3],
    ] and fields[3].startswith(f"*Cost*\n{cost}")
    assert problems(reply) == []


@pytest.mark.usefixtures("a_day")
async def test_stats_names_the_slowest_and_priciest_and_who_waits_the_longest_first(
    start_bot: StartBot, slack: FakeSlack
) -> None:
    slack.time_zones["U123ADA"] = "UTC"
    reply = await stats_of(start_bot, slack, "stats")
    text = texts(reply["blocks"])
    assert re.search(r"Slowest: <[^|]+\|Slow and costly> · 1h", text)
    assert re.search(r"Most expensive: <[^|]+\|Slow and costly> · \$2.50", text)
    assert "1 run(s) reported no cost" in text
    assert text.index("Asks something") < text.index("Needs approval")  # the oldest wait first
    assert "Busy" not in text
    buttons = [e["action_id"] for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["runs_show:failed", "runs_show:waiting"]


async def test_stats_uses_the_callers_time_zone(start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack) -> None:
    # 15:00 UTC is 00:00 in Tokyo: a run that ended at 14:00 UTC ended "yesterday" there.
    fabro.add(finished("succeeded", NOW - timedelta(hours=1), title="Late"))
    slack.time_zones["U123ADA"] = "Asia/Tokyo"
    today = await stats_of(start_bot, slack, "stats")
    assert "*Succeeded*\n0" in texts(today["blocks"]) and "Asia/Tokyo" in texts(today["blocks"])


async def test_a_window_past_the_request_cap_says_it_is_partial(fabro: FakeFabro) -> None:
    fabro.add(*[finished("succeeded", NOW - timedelta(minutes=i + 1)) for i in range(250)])
    async with FabroClient(fabro.url, fabro.token) as client:
        daily = Daily(client, lambda: NOW, max_pages=2)
        picture = await daily.picture(Window.TODAY, ZoneInfo("UTC"))
    assert picture.partial and picture.succeeded == 200
    message = stats_message(picture, now=NOW, web_base=None)
    assert PARTIAL in str(message["blocks"]) and problems(message) == []


async def test_stats_is_a_usage_error_for_an_unknown_window(start_bot: StartBot, slack: FakeSlack) -> None:
    bot = await start_bot()
    async with aiohttp.ClientSession() as session:
        _, ack, _ = await SlackUser.of(bot, slack, session).command("stats tomorow")
    assert "Did you mean `tomorrow`?" not in ack and "is not a window" in ack


# -- the scheduled summary ----------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def set_summary(bot: Bot, slack: FakeSlack, words: str, user: str = "U123ADA") -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        u = SlackUser.of(bot, slack, session)
        _, _, url = await u.command(words, channel=CHANNEL, user=user)
        return await u.reply(url)


def summaries(slack: FakeSlack) -> list[Any]:
    return [p for p in slack.posts(CHANNEL) if "Yesterday in Fabro" in p.text]


async def test_a_summary_is_posted_once_at_its_time_and_not_again_after_a_restart(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    slack.time_zones["U123ADA"] = "UTC"
    fabro.add(finished("succeeded", NOW.replace(hour=0) - timedelta(hours=2), title="Done yesterday"))
    clock = Clock(NOW.replace(hour=8))
    database = f"sqlite:///{tmp_path}/daily.db"
    bot = await start_bot(clock=clock, database_url=database, alert_pace=0.0)
    reply = await set_summary(bot, slack, "summary daily 09:00")
    assert reply["response_type"] == "in_channel" and "every day at 09:00 (UTC)" in reply["text"]
    await bot.alerter.cycle()
    assert summaries(slack) == []  # not yet
    clock.now = NOW.replace(hour=9, minute=1)
    await bot.alerter.cycle()
    [post] = summaries(slack)
    assert "Done yesterday" in texts(post.blocks) and "*Succeeded*\n1" in texts(post.blocks)
    await bot.alerter.cycle()
    await bot.stop()
    again = await start_bot(clock=clock, database_url=database, alert_pace=0.0)  # a restart, same day
    await again.alerter.cycle()
    assert len(summaries(slack)) == 1
    clock.now += timedelta(days=1)  # the next day: one more
    await again.alerter.cycle()
    assert len(summaries(slack)) == 2


async def test_a_summary_due_while_the_bot_was_down_goes_out_when_it_is_back_that_day(
    start_bot: StartBot, slack: FakeSlack, tmp_path: Path
) -> None:
    slack.time_zones["U123ADA"] = "UTC"
    clock = Clock(NOW.replace(hour=7))
    database = f"sqlite:///{tmp_path}/daily.db"
    bot = await start_bot(clock=clock, database_url=database, alert_pace=0.0)
    await set_summary(bot, slack, "summary daily 09:00")
    await bot.stop()  # down from 07:00…
    clock.now = NOW.replace(hour=14)  # …to 14:00: the 09:00 summary was missed
    back = await start_bot(clock=clock, database_url=database, alert_pace=0.0)
    await back.alerter.cycle()
    assert len(summaries(slack)) == 1


async def test_setting_a_summary_again_replaces_it_and_off_stops_it(
    start_bot: StartBot, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(clock=Clock(NOW), database_url=f"sqlite:///{tmp_path}/d.db", alert_pace=0.0)
    await set_summary(bot, slack, "summary daily 09:00")
    await set_summary(bot, slack, "summary daily 17:30")
    [setting] = await bot.store.summaries(CHANNEL)
    assert setting.at == "17:30" and setting.tz == "America/Los_Angeles"  # the setter's own zone
    shown = await set_summary(bot, slack, "summary")
    assert shown["response_type"] == "ephemeral" and "17:30" in shown["text"]
    off = await set_summary(bot, slack, "summary off")
    assert off["response_type"] == "in_channel" and await bot.store.summaries(CHANNEL) == []


async def test_only_the_routing_allowlist_may_set_a_summary(
    start_bot: StartBot, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(subscription_allowlist="U0ROUTER", database_url=f"sqlite:///{tmp_path}/d.db")
    reply = await set_summary(bot, slack, "summary daily 09:00", user="U123ADA")
    assert "may not change where alerts are posted" in reply["text"]
    assert await bot.store.summaries() == []
    assert "no daily summary" in (await set_summary(bot, slack, "summary", user="U123ADA"))["text"]


@pytest.mark.parametrize(
    "words", ["summary daily 25:00", "summary daily 9", "summary weekly 09:00", "summary daily ٠٩:٠٠"]
)
async def test_summary_mistakes_get_a_kind_usage_error(start_bot: StartBot, slack: FakeSlack, words: str) -> None:
    bot = await start_bot()
    async with aiohttp.ClientSession() as session:
        _, ack, _ = await SlackUser.of(bot, slack, session).command(words, channel=CHANNEL)
    assert "summary daily 09:00" in ack


def test_a_summary_day_key_round_trips() -> None:
    from bot.core.keys import AlertKey, AlertKind

    key = AlertKey(AlertKind.SUMMARY, date(2026, 11, 28).isoformat())
    assert AlertKey.parse(key.encode()) == key and key.encode() == "summary:2026-11-28"


async def test_people_asking_for_stats_at_once_share_one_read(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add(*[finished("succeeded", NOW - timedelta(hours=i % 150)) for i in range(300)])
    fabro.latency = 0.05
    bot = await start_bot(clock=lambda: NOW)
    fabro.requests.clear()
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        sent = await asyncio.gather(*(user.command("stats week", user=f"U{i:04d}STAT") for i in range(30)))
        replies = [await user.reply(url) for _, _, url in sent]
    assert all("*Succeeded*\n" in texts(r["blocks"]) for r in replies)
    listings = fabro.calls("/api/v1/runs")
    assert len(listings) <= 4 + 1, len(listings)  # 300 runs: one shared read of 3-4 pages, and what waits


async def test_a_read_serves_for_a_short_time_then_is_read_again(fabro: FakeFabro) -> None:
    fabro.add(finished("succeeded", NOW - timedelta(hours=1)))
    ticks = [0.0]
    async with FabroClient(fabro.url, fabro.token) as client:
        daily = Daily(client, lambda: NOW, monotonic=lambda: ticks[0])
        await daily.picture(Window.TODAY, ZoneInfo("UTC"))
        asked = len(fabro.requests)
        await daily.picture(Window.TODAY, ZoneInfo("Asia/Tokyo"))  # a later start: covered by the read
        await daily.picture(Window.TODAY, ZoneInfo("UTC"))
        assert len(fabro.requests) == asked
        ticks[0] += CACHE_FOR + 1
        await daily.picture(Window.TODAY, ZoneInfo("UTC"))
        assert len(fabro.requests) == 2 * asked
    assert CACHE_FOR <= 60


async def test_a_failed_read_is_not_kept(fabro: FakeFabro) -> None:
    async with FabroClient(fabro.url, fabro.token, timeout=2) as client:
        daily = Daily(client, lambda: NOW)
        fabro.fail_next(503, 10, path_prefix="/api/v1/runs")
        with pytest.raises(FabroError):
            await daily.picture(Window.TODAY, ZoneInfo("UTC"))
        fabro.faults.clear()
        picture = await daily.picture(Window.TODAY, ZoneInfo("UTC"))
    assert not picture.partial
