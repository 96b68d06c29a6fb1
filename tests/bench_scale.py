"""Benchmark: what the bot costs as people, follows and history grow, over real loopback HTTP
against the fake Fabro (50 ms per request) and fake Slack, with a real SQLite file.

    python tests/bench_scale.py [--only idle,burst,alert,stats,startup,store] [--quick]

SQL statements are counted by the store itself (`Store.statements`), Fabro requests from the fake's
request log, memory as the resident set of this process (the bot and both fakes; the fakes' logs
are cleared as they go, and fake Slack does not check Block Kit limits here: the tests do).

Goals: per idle cycle ≤ 2 Fabro requests and ≤ 20 SQL statements whatever the number of Home
viewers and follows; a burst of 200 Home opens all published < 2 s; RSS after 1,000 Home opens
< 150 MB; a new failure alerted < 1 s after Fabro reports it with 1,000 Home viewers; the
due-deliveries query < 2 ms at any history size.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SKIP_SLACK_SDK_WARNING", "1")

import aiohttp

from bot.app import Bot
from bot.store.sqlite import SQLiteStore
from tests.conftest import SlackUser, bot_settings, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

ALERTS = "C0ALERTS"
FOLLOWS = "C0FOLLOW"
LOGINS = ["octocat", "grace", "hopper", "linus"]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def size_mb(path: str) -> float:
    return os.path.getsize(path) / 2**20


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def runs_for(n: int, waiting: int, running: int) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(days=2)
    runs = []
    for i in range(n):
        by = {"kind": "user", "identity": {"issuer": "github", "subject": str(i)}, "login": LOGINS[i % 4]}
        kind = "running" if i < waiting + running else "succeeded"
        runs.append(make_run(kind, title=f"Run {i}", created=start + timedelta(seconds=i), created_by=by))
    return runs


@asynccontextmanager
async def harness(
    tmp: str, *, runs: int = 1000, waiting: int = 50, running: int = 60, stream: bool = True
) -> AsyncIterator[tuple[Bot, FakeFabro, FakeSlack, SlackUser]]:
    fabro = await FakeFabro().start()
    slack = await FakeSlack(check_limits=False).start()  # the bot's time, not the fake's validation
    made = runs_for(runs, waiting, running)
    fabro.add(*made)
    for run in made[:waiting]:
        fabro.request_approval(run["id"])
    settings = bot_settings(
        fabro,
        slack,
        database_url=f"sqlite:///{tmp}/scale.db",
        user_links="octocat=U0000000",
        alert_channel=ALERTS,
        fabro_event_stream=stream,
    )
    bot = Bot(settings, schedule_alerts=False, alert_pace=0.0)
    await bot.start()
    try:
        await bot.scheduled_cycle()  # the first cycle: the index learns the runs
        if stream and bot.live is not None:
            await bot.live.start()
            await wait_for(lambda: bot.live is not None and bot.live.connected, 10)
        fabro.latency = 0.050
        async with aiohttp.ClientSession() as session:
            yield bot, fabro, slack, SlackUser.of(bot, slack, session)
    finally:
        await bot.stop()
        await fabro.stop()
        await slack.stop()


async def open_homes(user: SlackUser, slack: FakeSlack, users: list[str], *, at_once: int = 50) -> list[float]:
    """Open each Home (a signed app_home_opened), `at_once` at a time; seconds from send to published."""
    took: list[float] = []
    for first in range(0, len(users), at_once):
        batch = users[first : first + at_once]
        for who in batch:
            slack.published_at.pop(who, None)
        sent = time.perf_counter()
        await asyncio.gather(*(user.open_home(who) for who in batch))

        def published(b: list[str] = batch) -> bool:
            return all(w in slack.published_at for w in b)

        await wait_for(published, 60, 0.001)
        took += [slack.published_at[w] - sent for w in batch]
        slack.calls.clear()
        slack.homes.clear()
    return took


def viewers(n: int, offset: int = 0) -> list[str]:
    return [f"U{i:07d}" for i in range(offset, offset + n)]


async def idle_cycle(bot: Bot, fabro: FakeFabro, cycles: int = 3) -> tuple[float, float]:
    """Fabro requests and SQL statements per idle cycle (background work the cycle set off included)."""
    await bot.scheduled_cycle()
    await asyncio.sleep(1.0)
    fabro.requests.clear()
    statements = bot.store.statements
    for _ in range(cycles):
        await bot.scheduled_cycle()
        await asyncio.sleep(0.3)
    return len(fabro.requests) / cycles, (bot.store.statements - statements) / cycles


async def bench_idle(quick: bool) -> None:
    print("\n## Idle cycle: Fabro requests and SQL statements per cycle (stream on)")
    steps = [(0, 0), (100, 0), (1000, 0), (1000, 50)] if not quick else [(0, 0), (100, 0), (100, 10)]
    with tempfile.TemporaryDirectory() as tmp:
        async with harness(tmp) as (bot, fabro, slack, user):
            opened = 0
            followed = 0
            running = [r for r in fabro.runs.values() if r["lifecycle"]["status"]["kind"] == "running"]
            before = rss_mb()
            for want_viewers, want_follows in steps:
                if want_viewers > opened:
                    await open_homes(user, slack, viewers(want_viewers - opened, opened))
                    opened = want_viewers
                for run in running[followed:want_follows]:
                    await bot.follower.follow(run["id"], channel=FOLLOWS, user_id="U0BENCH")
                followed = max(followed, want_follows)
                requests, statements = await idle_cycle(bot, fabro)
                print(
                    f"  {opened:>5} Home viewers, {followed:>3} follows: {requests:5.1f} Fabro requests,"
                    f" {statements:6.1f} SQL statements per cycle (goal ≤ 2 and ≤ 20)"
                )
            gc.collect()
            print(f"  RSS {before:.0f} MB before the opens → {rss_mb():.0f} MB after {opened} opens (goal < 150 MB)")


def _slack_side(conn: Any, n: int) -> None:
    """Slack, in a process of its own: the fake Web API, and n people opening Home at once."""
    asyncio.run(_slack_side_async(conn, n))


async def _slack_side_async(conn: Any, n: int) -> None:
    slack = await FakeSlack(check_limits=False).start()
    conn.send(slack.api_url)
    events_url = await asyncio.to_thread(conn.recv)
    async with aiohttp.ClientSession() as session:
        took = await open_homes(SlackUser(events_url, slack, session), slack, viewers(n), at_once=n)
    conn.send(took)
    await asyncio.to_thread(conn.recv)
    await slack.stop()


async def bench_burst(quick: bool) -> None:
    """Slack's side (its Web API and the people opening Home) runs in another process, as it does for
    real: the latency and the memory measured are the bot's (with the fake Fabro beside it)."""
    n = 50 if quick else 200
    print(f"\n## Home burst: {n} people open Home at once (1,000 runs, 50 waiting, Fabro 50 ms)")
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    slack_side = context.Process(target=_slack_side, args=(theirs, n))
    slack_side.start()
    api_url = await asyncio.to_thread(ours.recv)
    fabro = await FakeFabro().start()
    made = runs_for(1000, 50, 60)
    fabro.add(*made)
    for run in made[:50]:
        fabro.request_approval(run["id"])
    with tempfile.TemporaryDirectory() as tmp:
        settings = bot_settings(
            fabro,
            FakeSlack(),
            slack_api_url=api_url,
            database_url=f"sqlite:///{tmp}/burst.db",
            fabro_event_stream=False,
        )
        bot = Bot(settings, schedule_alerts=False, alert_pace=0.0)
        await bot.start()
        try:
            await bot.scheduled_cycle()
            fabro.latency = 0.050
            gc.collect()
            before, peak = rss_mb(), [0.0]

            async def sample() -> None:
                while True:
                    peak[0] = max(peak[0], rss_mb())
                    await asyncio.sleep(0.01)

            sampler = asyncio.create_task(sample())
            ours.send(f"http://127.0.0.1:{bot.http_port}/slack/events")
            took = await asyncio.to_thread(ours.recv)
            sampler.cancel()
            ours.send("done")
            gc.collect()
            print(
                f"  publish p50 {percentile(took, 50) * 1000:.0f} ms, p99 {percentile(took, 99) * 1000:.0f} ms,"
                f" last {max(took) * 1000:.0f} ms (goal: all < 2000 ms)"
            )
            print(f"  RSS of the bot before {before:.0f} MB, peak {peak[0]:.0f} MB, after {rss_mb():.0f} MB")
        finally:
            await bot.stop()
            await fabro.stop()
            slack_side.join(10)


async def bench_alert(quick: bool) -> None:
    counts = [300] if quick else [300, 1000]
    print("\n## One new failure while every Home is being republished (stream on, then by the poll alone)")
    for n in counts:
        for stream in (True, False):
            with tempfile.TemporaryDirectory() as tmp:
                async with harness(tmp, stream=stream) as (bot, fabro, slack, user):
                    await open_homes(user, slack, viewers(n))
                    bot.home.monotonic = lambda: time.monotonic() + 100  # every Home may be republished
                    slack.latency["views.publish"] = 0.05
                    newly = make_run("running", title="Now waiting")
                    fabro.add(newly)
                    fabro.request_approval(newly["id"])
                    await bot.scheduled_cycle()  # every Home is marked; their refresh is under way
                    victim = next(r for r in fabro.runs.values() if r["lifecycle"]["status"]["kind"] == "running")
                    posted = len(slack.posts(ALERTS))
                    started = time.perf_counter()
                    fabro.fail(victim["id"], "boom")
                    if stream:

                        def alerted(p: int = posted) -> bool:
                            return len(slack.posts(ALERTS)) > p

                        await wait_for(alerted, 30, 0.001)
                        took = time.perf_counter() - started
                        how = "by the event stream"
                    else:
                        await bot.scheduled_cycle()
                        took = time.perf_counter() - started
                        how = "by a poll cycle (its whole duration)"
                    busy = bot.home._refreshing.locked()
                    print(
                        f"  {n:>5} Home viewers: alerted {how} in {took * 1000:.0f} ms"
                        f" (goal < 1000 ms); Home refresh still running meanwhile: {busy}"
                    )


async def bench_stats(quick: bool) -> None:
    people = 10 if quick else 30
    print(f"\n## /runs stats week: {people} people at once, 2,000 runs changed this week, Fabro 50 ms")
    with tempfile.TemporaryDirectory() as tmp:
        fabro = await FakeFabro().start()
        slack = await FakeSlack().start()
        now = datetime.now(UTC)
        fabro.add(*[make_run("succeeded", created=now - timedelta(minutes=5 * i + 10)) for i in range(2000)])
        bot = Bot(bot_settings(fabro, slack, database_url=f"sqlite:///{tmp}/s.db"), schedule_alerts=False)
        await bot.start()
        try:
            fabro.latency = 0.050
            fabro.requests.clear()
            async with aiohttp.ClientSession() as session:
                user = SlackUser.of(bot, slack, session)
                started = time.perf_counter()
                sent = await asyncio.gather(*(user.command("stats week", user=f"U{i:07d}") for i in range(people)))
                for _, _, url in sent:
                    await user.reply(url, timeout=60)
                took = time.perf_counter() - started
            listings = len(fabro.calls("/api/v1/runs"))
            print(f"  {listings} Fabro requests in all ({listings / people:.1f} per command), last answer {took:.1f} s")
        finally:
            await bot.stop()
            await fabro.stop()
            await slack.stop()


async def bench_startup(quick: bool) -> None:
    total = 2000 if quick else 10_000
    print(f"\n## First start with {total:,} runs in Fabro (50 waiting)")
    with tempfile.TemporaryDirectory() as tmp:
        fabro = await FakeFabro().start()
        slack = await FakeSlack().start()
        made = runs_for(total, 50, 0)
        fabro.add(*made)
        for run in made[:50]:
            fabro.request_approval(run["id"])
        settings = bot_settings(fabro, slack, database_url=f"sqlite:///{tmp}/st.db", alert_channel=ALERTS)
        bot = Bot(settings, schedule_alerts=False, alert_pace=0.0)
        await bot.start()
        try:
            fabro.requests.clear()
            await bot.scheduled_cycle()
            print(f"  first cycle: {len(fabro.requests)} Fabro requests")
            fabro.requests.clear()
            await bot.scheduled_cycle()
            print(f"  next cycle: {len(fabro.requests)} Fabro requests")
        finally:
            await bot.stop()
            await fabro.stop()
            await slack.stop()


def query_ms(path: str, samples: int = 50) -> float:
    from bot.store.sql import DELIVERIES_DUE

    db = sqlite3.connect(path)
    try:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            db.execute(DELIVERIES_DUE, (now,)).fetchall()
            timings.append(time.perf_counter() - started)
        return statistics.median(timings) * 1000
    finally:
        db.close()


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def insert_day(db: sqlite3.Connection, day: datetime, runs: int, tag: int) -> None:
    """One day of history as the bot writes it: the runs index, failure alerts in two channels (posted,
    never edited again), questions answered (resolved) with their thread replies, and actions."""
    alerts: list[tuple[str, str, str, str, str, str, str | None]] = []
    index: list[tuple[str, None, str, str, str, None, str]] = []
    actions: list[tuple[str, str, str, str, str, str]] = []
    stamp = f"{tag:04d}"
    for i in range(runs):
        run_id = f"R{stamp}{i:05d}"
        when = iso(day + timedelta(seconds=i * 80))
        index.append((run_id, None, LOGINS[i % 4], "failed" if i % 10 == 0 else "succeeded", f"Run {i}", None, when))
        if i % 10 == 0:
            for channel in ("C1", "C2"):
                alerts.append((f"failed:{run_id}", channel, run_id, "failed", "posted", when, None))
        if i % 25 == 0:
            alerts.append((f"question:{run_id}:q1", "C1", run_id, "question", "resolved", when, '{"v":1}'))
            alerts.append((f"update:{run_id}:remind-q1", "C1", run_id, "update", "posted", when, None))
            actions.append((f"answer:{run_id}:q1", run_id, "answer", "U1", when, "done"))
    db.executemany(
        "INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at, outcome, ts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, '1.1')",
        alerts,
    )
    db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", index)
    db.executemany(
        "INSERT INTO actions (key, run_id, action, user_id, requested_at, state) VALUES (?, ?, ?, ?, ?, ?)", actions
    )
    db.commit()


async def forget_all(store: SQLiteStore, before: datetime, batch: int = 500) -> int:
    total = 0
    while gone := await store.forget(before, batch=batch):
        total += gone
    return total


async def bench_store(quick: bool) -> None:
    rows = 40_000 if quick else 400_000
    print(f"\n## The due-deliveries query (SQLite) at 0 and {rows:,} settled alerts, and retention")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/history.db"
        store = SQLiteStore(path)
        await store.open()
        print(f"  empty: {query_ms(path):.3f} ms")
        db = sqlite3.connect(path)
        old = datetime.now(UTC) - timedelta(days=200)
        db.executemany(
            "INSERT INTO alerts (key, channel, run_id, kind, state, claimed_at, ts) VALUES (?, ?, ?, ?, ?, ?, '1.1')",
            (
                (f"failed:R{i:07d}", "C1", f"R{i:07d}", "failed", "posted", iso(old + timedelta(seconds=i)))
                for i in range(rows)
            ),
        )
        db.commit()
        db.close()
        count = sqlite3.connect(path).execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
        size = size_mb(path)
        print(f"  {count:,} settled alerts: {query_ms(path):.3f} ms (goal < 2 ms); file {size:.0f} MB")
        started = time.perf_counter()
        gone = await forget_all(store, datetime.now(UTC) - timedelta(days=90))
        count = sqlite3.connect(path).execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
        print(
            f"  retention deleted {gone:,} rows in {time.perf_counter() - started:.1f} s (batches of 500);"
            f" {count:,} alerts left: {query_ms(path):.3f} ms"
        )
        await store.close()

    sim = 30 if quick else 120
    print(f"\n## {sim} days at 1,000 runs a day with RETENTION_DAYS=90 (retention once a day)")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/days.db"
        store = SQLiteStore(path)
        await store.open()
        db = sqlite3.connect(path)
        first = datetime.now(UTC) - timedelta(days=sim)
        sizes = []
        for d in range(sim):
            day = first + timedelta(days=d)
            insert_day(db, day, 1000, d)
            await forget_all(store, day - timedelta(days=90))
            sizes.append(size_mb(path))
        counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("alerts", "runs", "actions")}
        db.close()
        await store.close()
        print(
            f"  file {sizes[min(89, sim - 1)]:.0f} MB at day {min(90, sim)}, {sizes[-1]:.0f} MB at day {sim}"
            f" (freed pages are reused); rows kept: {counts}; due-deliveries query {query_ms(path):.3f} ms"
        )


async def bench_postgres(quick: bool) -> None:
    """The due-deliveries query on PostgreSQL (TEST_DATABASE_URL, or the local server) at 0 and many rows."""
    import uuid

    import psycopg

    from bot.store.postgres import PostgresStore
    from bot.store.sql import DELIVERIES_DUE
    from tests.conftest import POSTGRES_URL

    rows = 40_000 if quick else 400_000
    print(f"\n## The due-deliveries query (PostgreSQL) at 0 and {rows:,} settled alerts")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        print(f"  skipped: PostgreSQL is not reachable ({type(exc).__name__})")
        return
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3D{schema}"
    try:
        store = PostgresStore(url)
        await store.open()
        await store.close()
        now = iso(datetime.now(UTC))
        old = datetime.now(UTC) - timedelta(days=200)

        def timed(conn: psycopg.Connection[Any]) -> float:
            timings = []
            for _ in range(50):
                started = time.perf_counter()
                conn.execute(DELIVERIES_DUE.replace("?", "%s"), (now,)).fetchall()
                timings.append(time.perf_counter() - started)
            return statistics.median(timings) * 1000

        with psycopg.connect(url, autocommit=True) as conn:
            print(f"  empty: {timed(conn):.3f} ms")
            with (
                conn.cursor() as cursor,
                cursor.copy("COPY alerts (key, channel, run_id, kind, state, claimed_at, ts) FROM STDIN") as copy,
            ):
                for i in range(rows):
                    when = iso(old + timedelta(seconds=i))
                    copy.write_row((f"failed:R{i:07d}", "C1", f"R{i:07d}", "failed", "posted", when, "1.1"))
            conn.execute("ANALYZE alerts")
            print(f"  {rows:,} settled alerts: {timed(conn):.3f} ms (goal < 2 ms)")
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


TOPICS = {
    "store": bench_store,
    "postgres": bench_postgres,
    "idle": bench_idle,
    "burst": bench_burst,
    "alert": bench_alert,
    "stats": bench_stats,
    "startup": bench_startup,
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(TOPICS), help="comma-separated: " + ", ".join(TOPICS))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a quick look")
    args = parser.parse_args()
    print(f"bench_scale on {os.cpu_count()} CPUs; numbers are noisy when the machine is shared")
    for name in args.only.split(","):
        await TOPICS[name.strip()](args.quick)


if __name__ == "__main__":
    asyncio.run(main())
