"""Resume beside Retry: a failed run with a checkpoint runs again in place, once, and Fabro's
refusals are explained; drafts are never offered a merge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

ADA, BOB = "U123ADA", "U456BOB"


@pytest.fixture
async def user(start_bot: StartBot, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackUser]:
    bot: Bot = await start_bot(database_url=f"sqlite:///{tmp_path}/resume.db")
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


async def card_of(user: SlackUser, run_id: str) -> dict[str, Any]:
    _, _, url = await user.command(run_id)
    reply: dict[str, Any] = await user.reply(url)
    return reply


def block_of(card: dict[str, Any], prefix: str) -> dict[str, Any]:
    [block] = [b for b in card["blocks"] if b["type"] == "actions" and b.get("block_id", "").startswith(prefix)]
    found: dict[str, Any] = block
    return found


async def click(user: SlackUser, block: dict[str, Any], action_id: str, *, who: str = ADA) -> str:
    [element] = [e for e in block["elements"] if e["action_id"] == action_id]
    _, _, url = await user.click(
        {"action_id": element["action_id"], "value": element.get("value")}, block_id=block["block_id"], user=who
    )
    return url


def failed(fabro: FakeFabro, *, checkpoints: int = 2, reason: str = "workflow_error") -> dict[str, Any]:
    run = make_run("failed", reason=reason, title="Add rate limiting")
    fabro.add(run)
    if checkpoints:
        fabro.checkpoint(run["id"], checkpoints)
    return run


async def test_resume_sits_beside_retry_and_a_double_click_resumes_the_run_once(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed(fabro)
    block = block_of(await card_of(user, run["id"]), "retry:")
    assert [e["text"]["text"] for e in block["elements"]] == ["Retry", "Resume"]
    first, second = await asyncio.gather(
        click(user, block, "steer:resume_run"), click(user, block, "steer:resume_run", who=BOB)
    )
    await wait_for(lambda: any("Resumed by" in json.dumps(r) for r in slack.responses_to(first)))
    starts = [r.body for r in fabro.calls(method="POST") if r.path.endswith("/start")]
    assert starts == [{"resume": True}]  # once, with the body Fabro takes
    assert fabro.runs[run["id"]]["lifecycle"]["status"]["kind"] == "runnable"  # the same run, at work again
    await wait_for(lambda: slack.responses_to(second))
    told = json.dumps(slack.responses_to(second))
    assert "already resuming this run" in told or "Already done" in told


async def test_a_run_without_a_checkpoint_is_told_to_retry_instead_and_nothing_is_sent(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed(fabro, checkpoints=0)
    url = await click(user, block_of(await card_of(user, run["id"]), "retry:"), "steer:resume_run")
    await wait_for(lambda: any("nothing to resume from" in json.dumps(r) for r in slack.responses_to(url)))
    assert not [r for r in fabro.calls(method="POST") if r.path.endswith("/start")]


async def test_an_engine_still_running_is_explained_from_fabros_409(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = failed(fabro)
    fabro.engine_running.add(run["id"])
    url = await click(user, block_of(await card_of(user, run["id"]), "retry:"), "steer:resume_run")
    await wait_for(lambda: any("has not exited yet" in json.dumps(r) for r in slack.responses_to(url)))


async def test_a_run_that_failed_before_any_stage_offers_retry_only(user: SlackUser, fabro: FakeFabro) -> None:
    run = failed(fabro, checkpoints=0, reason="sandbox_init_failed")
    block = block_of(await card_of(user, run["id"]), "retry:")
    assert [e["text"]["text"] for e in block["elements"]] == ["Retry"]


async def test_a_draft_is_refused_a_merge_with_the_link_to_mark_it_ready(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("succeeded", diff={"files_changed": 1, "additions": 3, "deletions": 1})
    fabro.add(run)
    fabro.open_pull_request(run["id"])
    block = block_of(await card_of(user, run["id"]), "ship:")
    fabro.pull_requests[run["id"]]["draft"] = True  # turned back into a draft on GitHub since
    url = await click(user, block, "steer:merge")
    await wait_for(lambda: slack.views)
    how = slack.views[-1]
    state = {"merge_method": {"merge_method": {"type": "radio_buttons", "selected_option": {"value": "squash"}}}}
    _, ack = await user.submit_view(how, {}, state=state)
    await user.submit_view(json.loads(ack)["view"], {})

    def said() -> str:
        return json.dumps([c.args for c in slack.calls_to("chat.postEphemeral")] + slack.responses_to(url))

    await wait_for(lambda: "ready for review" in said())
    assert "https://github.com/demo/api/pull/7" in said()
    assert not [r for r in fabro.calls(method="POST") if r.path.endswith("/merge")]  # never sent


async def test_a_merge_github_refuses_is_explained_by_the_pull_requests_state(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("succeeded", diff={"files_changed": 1, "additions": 3, "deletions": 1})
    fabro.add(run)
    fabro.open_pull_request(run["id"], mergeable=False)
    url = await click(user, block_of(await card_of(user, run["id"]), "ship:"), "steer:merge")
    await wait_for(lambda: slack.views)
    state = {"merge_method": {"merge_method": {"type": "radio_buttons", "selected_option": {"value": "merge"}}}}
    _, ack = await user.submit_view(slack.views[-1], {}, state=state)
    await user.submit_view(json.loads(ack)["view"], {})

    def said() -> str:
        return json.dumps([c.args for c in slack.calls_to("chat.postEphemeral")] + slack.responses_to(url))

    await wait_for(lambda: "cannot be merged as it is" in said())


async def test_a_run_without_changes_is_not_offered_a_pull_request(user: SlackUser, fabro: FakeFabro) -> None:
    run = make_run("succeeded")  # no diff: Fabro would answer 400 empty_diff
    fabro.add(run)
    card = await card_of(user, run["id"])
    assert "Create pull request" not in json.dumps(card)


async def test_a_draft_pull_request_shows_as_one_on_the_card_with_no_merge(user: SlackUser, fabro: FakeFabro) -> None:
    run = make_run("succeeded", diff={"files_changed": 1, "additions": 3, "deletions": 1})
    fabro.add(run)
    fabro.open_pull_request(run["id"], draft=True)
    card = json.dumps(await card_of(user, run["id"]))
    assert "is a draft" in card and "ready for review" in card and "Close pull request" in card
    assert "steer:merge" not in card
