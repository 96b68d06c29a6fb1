"""Several replicas on one PostgreSQL database: one scheduler leader at a time, a new one
when it dies, and every alert posted exactly once across the failover."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp

from bot.store.leadership import PostgresLeadership
from tests.app.test_cli import COMMAND, _env, fake_env
from tests.conftest import StartBot, wait_for, wait_until
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

CHANNEL = "C0REPLICA"


async def test_exactly_one_leader_and_a_successor_when_it_goes(postgres_url: str) -> None:
    first = PostgresLeadership(postgres_url, check_every=0.2)
    second = PostgresLeadership(postgres_url, check_every=0.2)
    await first.start()
    await wait_for(lambda: first.is_leader, timeout=5)
    await second.start()
    try:
        await wait_for(lambda: second.rounds >= 3)  # it asked for the lock several times
        assert (first.is_leader, second.is_leader) == (True, False)
        await first.stop()
        await wait_for(lambda: second.is_leader, timeout=10)  # a round or two; more when loaded
    finally:
        await first.stop()
        await second.stop()


def first_cycle_done(fabro: FakeFabro) -> bool:
    """The first cycle draws the line between history and news, then lists what waits on people."""
    return any(("status", "pending") in call.query for call in fabro.calls("/api/v1/runs"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def is_leader(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
            return "fabro_bot_scheduler_leader 1.0" in await response.text()
    except aiohttp.ClientError:
        return False


async def test_two_replicas_survive_a_kill_9_of_the_leader_and_post_each_alert_once(
    fabro: FakeFabro, slack: FakeSlack, postgres_url: str, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    processes = []
    for i, port in enumerate(ports):
        env = _env(
            fake_env(
                fabro,
                slack,
                HOST="127.0.0.1",
                PORT=str(port),
                DATABASE_URL=postgres_url,
                ALERT_CHANNEL=CHANNEL,
                POLL_INTERVAL_SECONDS="1",
                LOG_LEVEL="INFO",
            )
        )
        log = open(tmp_path / f"replica{i}.log", "wb")  # noqa: SIM115 - handed to the process
        processes.append(await asyncio.create_subprocess_exec(COMMAND, "run", env=env, stdout=log, stderr=log))
        log.close()
    try:

        async def leaders() -> list[int]:
            return [i for i, port in enumerate(ports) if await is_leader(port)]

        found: list[int] = []

        async def one_leader() -> bool:
            nonlocal found
            found = await leaders()
            return len(found) == 1

        await wait_until(one_leader, timeout=20, interval=0.1)
        leader = found[0]
        await wait_for(lambda: first_cycle_done(fabro), timeout=10)

        before = [make_run("running", title=f"Before {i}") for i in range(3)]
        fabro.add(*before)
        for run in before:
            fabro.fail(run["id"])
        await wait_for(lambda: len(slack.alert_keys(CHANNEL)) == 3, timeout=15)

        processes[leader].send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(processes[leader].wait(), 10) == -signal.SIGKILL
        survivor = 1 - leader
        # Within two poll intervals and a little.
        await wait_until(lambda: is_leader(ports[survivor]), timeout=5)

        after = [make_run("running", title=f"After {i}") for i in range(3)]
        fabro.add(*after)
        for run in after:
            fabro.fail(run["id"])
        await wait_for(lambda: len(slack.alert_keys(CHANNEL)) >= 6, timeout=15)
        polls = len(fabro.calls("/api/v1/runs"))
        await wait_for(lambda: len(fabro.calls("/api/v1/runs")) >= polls + 3, timeout=10)  # nothing posted twice
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 15)
    keys = slack.alert_keys(CHANNEL)
    assert sorted(keys) == sorted(fabro.failed_key(r["id"]) for r in before + after), keys
    assert len(keys) == len(set(keys))


async def test_two_schedulers_at_once_during_a_split_still_post_each_alert_once(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, postgres_url: str
) -> None:
    one = await start_bot(alert_pace=0.0, alert_channel=CHANNEL, database_url=postgres_url)
    two = await start_bot(alert_pace=0.0, alert_channel=CHANNEL, database_url=postgres_url)
    await one.alerter.cycle()
    runs = [make_run("running") for _ in range(4)]
    fabro.add(*runs)
    for run in runs:
        fabro.fail(run["id"])
    reports = await asyncio.gather(one.alerter.cycle(), two.alerter.cycle(), one.alerter.cycle(), two.alerter.cycle())
    assert sum(r.claimed for r in reports) == 4
    assert sorted(slack.alert_keys(CHANNEL)) == sorted(fabro.failed_key(r["id"]) for r in runs)


async def test_on_sqlite_a_second_process_on_the_same_file_stands_by(tmp_path: Path) -> None:
    from bot.store.leadership import leadership_for

    url = f"sqlite:///{tmp_path}/bot.db"
    first = leadership_for(url, check_every=0.1)
    second = leadership_for(url, check_every=0.1)
    await first.start()
    await second.start()
    try:
        assert (first.is_leader, second.is_leader) == (True, False)
        await first.stop()
        await wait_for(lambda: second.is_leader, timeout=10)  # a round or two; more when loaded
    finally:
        await first.stop()
        await second.stop()


async def test_a_leader_that_loses_the_database_steps_down_and_leadership_moves_on(postgres_url: str) -> None:
    import psycopg

    changes: list[bool] = []
    first = PostgresLeadership(postgres_url, check_every=0.2, on_change=changes.append)
    second = PostgresLeadership(postgres_url, check_every=0.2)
    await first.start()
    await wait_for(lambda: first.is_leader, timeout=5)
    await second.start()
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (first.backend_pid,))
        await wait_for(lambda: False in changes, timeout=3)  # it noticed, and stepped down
        await wait_for(lambda: first.is_leader != second.is_leader, timeout=3)
        rounds = (first.rounds, second.rounds)
        await wait_for(lambda: first.rounds >= rounds[0] + 3 and second.rounds >= rounds[1] + 3)
        assert first.is_leader != second.is_leader  # exactly one, whichever it is
    finally:
        await first.stop()
        await second.stop()
