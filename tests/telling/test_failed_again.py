"""A run resumed in place can fail again: each failure is its own alert, posted once (across restarts
too), and its Retry and Resume take it up once, while the earlier alert stays true in place."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.core.keys import ActionKey, ActionScope, ActionState, Verb
from bot.core.outcomes import Outcome, OutcomeVerb
from bot.core.records import Action
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack, Message

CHANNEL = "C0ALERTS"
ADA, BOB = "U123ADA", "U456BOB"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
def start_alerts(start_bot: StartBot, database: Path) -> Callable[[], Awaitable[Bot]]:
    """A bot alerting to CHANNEL on one SQLite file (a second call is a restart on the same file)."""

    async def start() -> Bot:
        bot = await start_bot(
            schedule_alerts=False, alert_pace=0.0, alert_channel=CHANNEL, database_url=f"sqlite:///{database}"
        )
        await bot.alerter.cycle()
        return bot

    return start


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def text_of(message: Message) -> str:
    return json.dumps(message.blocks) + message.text


def retry_block(message: Message) -> dict[str, Any]:
    [block] = [b for b in message.blocks if b["type"] == "actions" and b["block_id"].startswith("retry:")]
    found: dict[str, Any] = block
    return found


async def press(
    person: SlackUser, alert: Message, block: dict[str, Any], action_id: str, *, who: str = ADA
) -> tuple[int, str]:
    """Press a button of `block`, as the person's Slack shows it on `alert` (an earlier failure's buttons
    stay on screen after the alert was edited); the status and response URL it gave."""
    return await person.press(replace(alert, blocks=[block]), action_id, user=who)


def resumes(fabro: FakeFabro, run_id: str) -> int:
    return len([r for r in fabro.calls(method="POST") if r.path.endswith(f"/runs/{run_id}/start")])


def failing(fabro: FakeFabro, title: str = "Add rate limiting") -> dict[str, Any]:
    run = make_run("running", title=title)
    fabro.add(run)
    fabro.checkpoint(run["id"], 2)
    fabro.fail(run["id"], "verify: 3 tests failed")
    return run


async def fail_again(fabro: FakeFabro, run_id: str, message: str) -> None:
    await asyncio.sleep(0.005)  # Fabro names a failure by when it ended, to the millisecond
    fabro.fail(run_id, message)


async def test_a_run_resumed_from_its_alert_that_fails_again_gets_a_second_alert_once_and_its_resume_works_once(
    start_alerts: Callable[[], Awaitable[Bot]],
    fabro: FakeFabro,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
) -> None:
    bot = await start_alerts()
    run = failing(fabro)
    await bot.alerter.cycle()
    first_key = fabro.failed_key(run["id"])
    [first] = slack.posts(CHANNEL)
    assert slack.alert_keys(CHANNEL) == [first_key] and first_key.startswith(f"failed:{run['id']}:")
    first_buttons = retry_block(first)

    person = SlackUser.of(bot, slack, session)
    (_, one), (_, two) = await asyncio.gather(
        press(person, first, first_buttons, "steer:resume_run"),
        press(person, first, first_buttons, "steer:resume_run", who=BOB),
    )
    await wait_for(lambda: "Resumed by" in text_of(first))
    await wait_for(lambda: bool(slack.responses_to(two)) or bool(slack.responses_to(one)))
    assert resumes(fabro, run["id"]) == 1  # a double click on the first alert is one resume
    assert fabro.runs[run["id"]]["lifecycle"]["status"]["kind"] == "runnable"

    await bot.alerter.cycle()
    await fail_again(fabro, run["id"], "verify: the same 3 tests, still failing")
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    second_key = fabro.failed_key(run["id"])
    assert second_key != first_key
    assert slack.alert_keys(CHANNEL) == [first_key, second_key]  # the second failure is told, once
    second = slack.posts(CHANNEL)[1]
    assert "the same 3 tests, still failing" in text_of(second)
    assert "Resumed by" in text_of(first) and "still failing" not in text_of(first)  # the first stays true

    # The first alert's buttons (pressed late, from a stale copy) do not take up the new failure.
    _, late = await press(person, first, first_buttons, "steer:resume_run")
    await wait_for(lambda: bool(slack.responses_to(late)))
    assert resumes(fabro, run["id"]) == 1

    # The second alert's Resume works, once, however many press it.
    buttons = retry_block(second)
    assert [e["text"]["text"] for e in buttons["elements"]] == ["Retry", "Resume"]
    (_, a), (_, b) = await asyncio.gather(
        press(person, second, buttons, "steer:resume_run"),
        press(person, second, buttons, "steer:resume_run", who=BOB),
    )
    await wait_for(lambda: "Resumed by" in text_of(second))
    await wait_for(lambda: bool(slack.responses_to(a)) or bool(slack.responses_to(b)))
    assert resumes(fabro, run["id"]) == 2
    _, again = await press(person, second, buttons, "steer:retry")
    await wait_for(lambda: bool(slack.responses_to(again)))
    told = json.dumps(slack.responses_to(again))
    assert "Already done" in told or "already" in told.lower()
    assert [r for r in fabro.calls(method="POST") if r.path.endswith("/retry")] == []  # one failure, one take-up

    records = [a for a in await bot.store.actions_for_run(run["id"]) if a.key.scope is ActionScope.RETRY]
    assert sorted(str(a.key) for a in records) == sorted(
        [f"retry:{k.removeprefix('failed:')}" for k in (first_key, second_key)]
    )
    assert all(a.state is ActionState.DONE for a in records)
    assert fabro.violations == [] and slack.violations == []


async def test_a_second_failure_while_the_bot_was_down_is_posted_once_after_the_restart(
    start_alerts: Callable[[], Awaitable[Bot]], fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_alerts()
    run = failing(fabro)
    await bot.alerter.cycle()
    fabro.resume(run["id"])  # resumed in Fabro itself, not from Slack
    await bot.alerter.cycle()
    [first] = slack.posts(CHANNEL)
    assert "Resumed" in text_of(first) or "running" in text_of(first) or "runnable" in text_of(first)
    await bot.stop()

    await fail_again(fabro, run["id"], "timeout in deploy")
    again = await start_alerts()
    await again.alerter.cycle()
    await again.alerter.cycle()
    await again.stop()
    third = await start_alerts()  # and once more on the same file: nothing twice
    await third.alerter.cycle()
    keys = slack.alert_keys(CHANNEL)
    assert len(keys) == 2 and keys[1] == fabro.failed_key(run["id"]) and keys[0] != keys[1]
    assert "timeout in deploy" in text_of(slack.posts(CHANNEL)[1])
    assert fabro.violations == [] and slack.violations == []


async def test_a_run_that_failed_again_before_the_bot_looked_leaves_its_first_alert_saying_it_was_resumed(
    start_alerts: Callable[[], Awaitable[Bot]], fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_alerts()
    run = failing(fabro)
    await bot.alerter.cycle()
    fabro.resume(run["id"])
    await fail_again(fabro, run["id"], "failed again quickly")
    await bot.alerter.cycle()
    first, second = slack.posts(CHANNEL)
    assert "Resumed" in text_of(first) and "failed again quickly" not in text_of(first)
    assert "failed again quickly" in text_of(second)
    [settled] = [a for a in await bot.store.alerts_for_run(run["id"]) if str(a.key) == slack.alert_keys(CHANNEL)[0]]
    assert settled.outcome is not None and settled.outcome.verb is OutcomeVerb.RESUMED


def _downgrade(database: Path, run_id: str) -> None:
    """Write the run's stored keys as a version that did not tell failures apart wrote them."""
    with sqlite3.connect(database) as db:
        db.execute("UPDATE alerts SET key = ? WHERE run_id = ? AND kind = 'failed'", (f"failed:{run_id}", run_id))
        db.execute("UPDATE actions SET key = ? WHERE run_id = ? AND key LIKE 'retry:%'", (f"retry:{run_id}", run_id))


async def test_an_alert_stored_before_failures_were_told_apart_is_not_posted_again_and_a_later_failure_is(
    start_alerts: Callable[[], Awaitable[Bot]], fabro: FakeFabro, slack: FakeSlack, database: Path
) -> None:
    bot = await start_alerts()
    run = failing(fabro)
    await bot.alerter.cycle()
    await bot.stop()
    _downgrade(database, run["id"])

    upgraded = await start_alerts()
    fabro.emit(run["id"], "run.title.updated", {"title": "Add rate limiting"})  # back into a cycle
    await upgraded.alerter.cycle()
    await upgraded.alerter.cycle()
    assert len(slack.posts(CHANNEL)) == 1  # the stored `failed:<run>` stands for this failure
    [stored] = await upgraded.store.alerts_for_run(run["id"])
    assert str(stored.key) == f"failed:{run['id']}" and stored.outcome is None

    fabro.resume(run["id"])
    await upgraded.alerter.cycle()
    await fail_again(fabro, run["id"], "after the upgrade")
    await upgraded.alerter.cycle()
    await upgraded.alerter.cycle()
    assert slack.alert_keys(CHANNEL)[1:] == [fabro.failed_key(run["id"])]
    assert "after the upgrade" in text_of(slack.posts(CHANNEL)[1])


async def test_a_retry_recorded_before_failures_were_told_apart_still_takes_up_that_first_failure(
    start_alerts: Callable[[], Awaitable[Bot]], fabro: FakeFabro, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    bot = await start_alerts()
    run = failing(fabro)
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    old = Action(ActionKey(ActionScope.RETRY, run["id"]), Verb.RETRY, BOB, datetime.now(UTC))
    assert await bot.store.begin_action(old, stale_before=datetime.now(UTC)) is None
    retried = Outcome(OutcomeVerb.RETRIED, slack_user=BOB, run_id="01NEWRUN")
    await bot.store.finish_action(old.key, state=ActionState.DONE, outcome=retried)

    person = SlackUser.of(bot, slack, session)
    _, url = await press(person, alert, retry_block(alert), "steer:resume_run")
    await wait_for(lambda: bool(slack.responses_to(url)))
    assert resumes(fabro, run["id"]) == 0  # retried already: the failure is not taken up twice
    told = json.dumps(slack.responses_to(url))
    assert "Already done" in told and "<@U456BOB>" in told and "01NEWRUN" in told


async def test_an_alert_stored_before_failures_were_told_apart_and_retried_is_not_posted_again_after_the_upgrade(
    start_alerts: Callable[[], Awaitable[Bot]],
    fabro: FakeFabro,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
    database: Path,
) -> None:
    bot = await start_alerts()
    run = failing(fabro)
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    await press(SlackUser.of(bot, slack, session), alert, retry_block(alert), "steer:retry")
    await wait_for(lambda: "Retried" in text_of(alert))
    await bot.stop()
    _downgrade(database, run["id"])

    upgraded = await start_alerts()
    fabro.emit(run["id"], "run.title.updated", {"title": "Add rate limiting"})  # back into a cycle
    await upgraded.alerter.cycle()
    await upgraded.alerter.cycle()
    assert fabro.runs[run["id"]]["lifecycle"]["status"]["kind"] == "failed"  # the same failure, retried
    assert len(slack.posts(CHANNEL)) == 1  # the stored `failed:<run>` was about it, and it was retried
    assert "Retried" in text_of(alert)

    fabro.resume(run["id"])  # resumed in Fabro too, and failed again an hour later: that one is news
    await upgraded.alerter.cycle()
    fabro.fail(run["id"], "an hour later")
    fabro.runs[run["id"]]["timestamps"]["completed_at"] = "2099-01-01T00:00:00.000Z"
    fabro.emit(run["id"], "run.title.updated", {"title": "Add rate limiting"})
    await upgraded.alerter.cycle()
    await upgraded.alerter.cycle()
    assert slack.alert_keys(CHANNEL)[1:] == [f"failed:{run['id']}:20990101T000000.000Z"]
    assert "an hour later" in text_of(slack.posts(CHANNEL)[1])
