"""Every action once across kill -9: the real `fabro-slack-bot run` process is SIGKILLed right after
Fabro accepted a retry, a start, a merge or a steer (`action.acted`, before the record settles),
restarted on the same SQLite file, and the same button or window is pressed again once the dead
process's lease ran out. The bot reads what Fabro shows (the retry's successor and the new run's
provenance, the pull request's state, the run's events) and sends nothing: exactly one effect in
Fabro, and the record names the person who asked, who owns the run it made."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.acting.steering import action_lease
from bot.core.keys import ActionState
from bot.core.outcomes import OutcomeVerb
from bot.core.records import Action
from bot.failpoints import CRASH_AT_ENV
from bot.listeners.clicks import intent_of
from bot.store import open_store
from tests.conftest import SlackUser, wait_for, wait_until
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack
from tests.store.test_replicas import free_port
from tests.telling.test_alert_crashes import start_process, stop, wait_exit

ADA = "U123ADA"
CHANNEL = "C0ALERTS"
TIMEOUT = 1.0  # FABRO_TIMEOUT_SECONDS: the lease a dead process's record holds follows from it
SETTINGS = {
    "ALLOW_OPERATE": "*",
    "ALLOW_START": "*",
    "ALLOW_SHIP": "*",
    "FABRO_EVENT_STREAM": "off",
    "FABRO_TIMEOUT_SECONDS": str(TIMEOUT),
    # One cycle at start-up, then none during the test: the press, not the cycle, settles the record.
    "POLL_INTERVAL_SECONDS": "3600",
}

Press = Callable[[SlackUser], Awaitable[str]]  # does the action once more; returns where the person is told


@dataclass
class Case:
    """One action: how it is set up in Fabro and pressed, and how to count its effect there."""

    prepare: Callable[[FakeFabro], str]  # returns the run (or automation) acted on
    first: Callable[[SlackUser, FakeSlack, str], Awaitable[Press]]  # the first press; returns how to press again
    effects: Callable[[FakeFabro, str], int]
    said: str  # what the person is told on pressing again


@dataclass
class Running:
    process: asyncio.subprocess.Process
    user: SlackUser


@contextlib.asynccontextmanager
async def running(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, name: str, **extra: str
) -> AsyncIterator[Running]:
    port = free_port()
    process = await start_process(fabro, slack, tmp_path, name, PORT=str(port), **(SETTINGS | extra))
    try:
        async with aiohttp.ClientSession() as session:
            user = SlackUser(f"http://127.0.0.1:{port}/slack/events", slack, session)

            async def answers() -> bool:
                try:
                    return (await user.command("help", channel=CHANNEL))[0] == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(answers, timeout=20, interval=0.1)
            yield Running(process, user)
    finally:
        if process.returncode is None:
            if name == "first":
                process.kill()
            else:
                await stop(process)


async def card(user: SlackUser, run_id: str) -> dict[str, Any]:
    _, _, url = await user.command(run_id, channel=CHANNEL)
    return await user.reply(url, timeout=10)


def button(message: dict[str, Any], action_id: str) -> tuple[str, dict[str, Any]]:
    return next(
        (b.get("block_id", ""), e)
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id
    )


async def pressing(user: SlackUser, block_id: str, element: dict[str, Any]) -> str:
    action = {"action_id": element["action_id"], "value": element.get("value")}
    with contextlib.suppress(aiohttp.ClientError):  # the process may die while answering
        _, _, url = await user.click(action, block_id=block_id, channel=CHANNEL)
        return url
    return ""


async def press_button(user: SlackUser, message: dict[str, Any], action_id: str) -> Press:
    block_id, element = button(message, action_id)
    await pressing(user, block_id, element)
    return lambda again: pressing(again, block_id, element)


async def submitting(user: SlackUser, view: dict[str, Any], state: dict[str, Any]) -> str:
    with contextlib.suppress(aiohttp.ClientError):
        await user.submit_view(view, {}, state=state)
    return ""


# -- the four actions -------------------------------------------------------------------------------


def failed_run(fabro: FakeFabro) -> str:
    run = make_run("failed", title="Flaky login test")
    fabro.add(run)
    return str(run["id"])


async def retry(user: SlackUser, slack: FakeSlack, run_id: str) -> Press:
    return await press_button(user, await card(user, run_id), "steer:retry")


def retries(fabro: FakeFabro, run_id: str) -> int:
    return len([r for r in fabro.runs.values() if r.get("retried_from") == run_id])


def automation(fabro: FakeFabro) -> str:
    fabro.add_automation("nightly-deps", "Nightly dependency bumps")
    return "nightly-deps"


async def start(user: SlackUser, slack: FakeSlack, automation_id: str) -> Press:
    _, _, url = await user.command(f"start {automation_id}", channel=CHANNEL)
    return await press_button(user, await user.reply(url, timeout=10), "start:go")


def starts(fabro: FakeFabro, automation_id: str) -> int:
    return len([r for r in fabro.runs.values() if (r.get("automation") or {}).get("id") == automation_id])


def with_pull_request(fabro: FakeFabro) -> str:
    run = make_run("succeeded", title="Add rate limiting")
    fabro.add(run)
    fabro.open_pull_request(run["id"])
    return str(run["id"])


async def merge(user: SlackUser, slack: FakeSlack, run_id: str) -> Press:
    await press_button(user, await card(user, run_id), "steer:merge")
    await wait_for(lambda: slack.views, timeout=10)
    how = slack.views[-1]
    state = {"merge_method": {"merge_method": {"type": "radio_buttons", "selected_option": {"value": "squash"}}}}
    _, ack = await user.submit_view(how, {}, state=state)
    confirm = json.loads(ack)["view"]
    await submitting(user, confirm, {})
    return lambda again: submitting(again, confirm, {})


def merges(fabro: FakeFabro, run_id: str) -> int:
    return len(fabro.calls(f"/api/v1/runs/{run_id}/pull_request/merge", method="POST"))


def agent_at_work(fabro: FakeFabro) -> str:
    run = make_run("running", title="Refactor the billing module")
    fabro.add(run)
    return str(run["id"])


async def steer(user: SlackUser, slack: FakeSlack, run_id: str) -> Press:
    message = await card(user, run_id)
    await press_button(user, message, "steer:steer_text")
    await wait_for(lambda: slack.views, timeout=10)
    window = slack.views[-1]
    state = {"steer_instruction": {"steer_instruction": {"type": "plain_text_input", "value": "Use the staging db"}}}
    await submitting(user, window, state)
    return lambda again: submitting(again, window, state)


def steered(fabro: FakeFabro, run_id: str) -> int:
    return len([e for e in fabro.events.get(run_id, []) if e["event"] == "run.steer"])


CASES = {
    "retry": Case(failed_run, retry, retries, "Retried by <@U123ADA>"),
    "start": Case(automation, start, starts, "Started"),
    "merge": Case(with_pull_request, merge, merges, "Merged by <@U123ADA> (squash)"),
    "steer": Case(agent_at_work, steer, steered, "to the agent: Use the staging db"),
}


async def records(tmp_path: Path, about: str) -> list[Action]:
    """The action records under `about`: a run, or the intent of a start or a steer."""
    store = open_store(f"sqlite:///{tmp_path}/bot.db")
    await store.open()
    try:
        return await store.actions_for_run(about)
    finally:
        await store.close()


async def owner_of(tmp_path: Path, run_id: str) -> str | None:
    store = open_store(f"sqlite:///{tmp_path}/bot.db")
    await store.open()
    try:
        indexed = await store.indexed_run(run_id)
    finally:
        await store.close()
    return indexed.owner if indexed is not None else None


def made(fabro: FakeFabro, name: str, subject: str) -> str | None:
    """The run the action created, if it creates one."""
    if name == "retry":
        return next(str(r["id"]) for r in fabro.runs.values() if r.get("retried_from") == subject)
    if name == "start":
        return next(str(r["id"]) for r in fabro.runs.values() if (r.get("automation") or {}).get("id") == subject)
    return None


@pytest.mark.parametrize("name", list(CASES))
async def test_a_kill_9_after_fabro_acted_is_settled_from_fabro_and_never_sent_twice(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    subject = case.prepare(fabro)
    async with running(fabro, slack, tmp_path, "first", **{CRASH_AT_ENV: "action.acted"}) as first:
        again = await case.first(first.user, slack, subject)
        assert await wait_exit(first.process) == -signal.SIGKILL
        died_at = time.monotonic()  # after the record was written: its lease runs out by died_at + lease
    assert case.effects(fabro, subject) == 1  # Fabro acted; the bot died before writing it down
    about = start_intent(slack) if name == "start" else intent_of("V0001") if name == "steer" else subject
    [left] = await records(tmp_path, about)
    assert left.state is ActionState.PENDING

    async with running(fabro, slack, tmp_path, "second") as second:
        lease = action_lease(TIMEOUT).total_seconds()
        await wait_for(lambda: time.monotonic() > died_at + lease, timeout=lease + 10, interval=0.2)
        before = len(slack.responses) + len(slack.calls_to("chat.postEphemeral"))
        url = await again(second.user)
        await wait_for(lambda: len(slack.responses) + len(slack.calls_to("chat.postEphemeral")) > before, timeout=10)
        if url:
            await wait_for(lambda: case.said in json.dumps(slack.responses_to(url)), timeout=10)
        if name == "start":  # the channel hears of the run once, from the press that found it
            await wait_for(lambda: any("Started a run" in m.text for m in slack.posts(CHANNEL)), timeout=10)

    assert case.effects(fabro, subject) == 1  # nothing was sent again
    [settled] = await records(tmp_path, about)
    assert settled.state is ActionState.DONE and settled.user_id == ADA
    assert settled.outcome is not None and settled.outcome.slack_user == ADA
    new = made(fabro, name, subject)
    if new is not None:
        assert settled.outcome.run_id == new
        assert await owner_of(tmp_path, new) == ADA  # the run the crash left behind has its owner
    assert "Traceback" not in (tmp_path / "second.log").read_text()


def start_intent(slack: FakeSlack) -> str:
    """The intent the start confirmation carries (its Start button's value)."""
    for response in reversed(slack.responses):
        for block in response.get("body", response).get("blocks", []):
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == "start:go":
                    return str(json.loads(element["value"])["i"])
    raise AssertionError("no start confirmation was shown")


async def test_a_retry_left_pending_by_a_dead_process_gets_its_owner_without_a_second_press(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    """Nobody presses again: the alert cycle settles the record from Fabro once its lease ran out."""
    run_id = failed_run(fabro)
    async with running(fabro, slack, tmp_path, "first", **{CRASH_AT_ENV: "action.acted"}) as first:
        await retry(first.user, slack, run_id)
        assert await wait_exit(first.process) == -signal.SIGKILL
    new = made(fabro, "retry", run_id)
    assert new is not None

    async def owned() -> bool:
        return await owner_of(tmp_path, new) == ADA

    async with running(fabro, slack, tmp_path, "second", POLL_INTERVAL_SECONDS="1"):
        await wait_until(owned, timeout=action_lease(TIMEOUT).total_seconds() + 20, interval=0.5)
    [settled] = await records(tmp_path, run_id)
    assert settled.state is ActionState.DONE and settled.outcome is not None
    assert settled.outcome.verb is OutcomeVerb.RETRIED and settled.outcome.run_id == new
    assert retries(fabro, run_id) == 1
