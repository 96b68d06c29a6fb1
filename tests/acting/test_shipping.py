"""Shipping a run's result from its card: create the pull request (followed until it exists),
merge it (how, then what, then merge), or close it; each once, explained when Fabro or GitHub says no."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import Bot
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.loopback import serve
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

ADA, BOB = "U123ADA", "U456BOB"


@pytest.fixture
async def user(start_bot: StartBot, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackUser]:
    bot: Bot = await start_bot(database_url=f"sqlite:///{tmp_path}/ship.db")
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


async def card_of(user: SlackUser, run_id: str) -> dict[str, Any]:
    _, _, url = await user.command(run_id)
    return await user.reply(url)


def ship_block(card: dict[str, Any]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = card["blocks"]
    [block] = [b for b in blocks if b["type"] == "actions" and b.get("block_id", "").startswith("ship:")]
    return block


async def click(user: SlackUser, block: dict[str, Any], action_id: str, *, who: str = ADA) -> str:
    [element] = [e for e in block["elements"] if e["action_id"] == action_id]
    _, _, url = await user.click(
        {"action_id": element["action_id"], "value": element.get("value")}, block_id=block["block_id"], user=who
    )
    return url


def posted(fabro: FakeFabro, suffix: str) -> list[Any]:
    return [r.body for r in fabro.calls(method="POST") if r.path.endswith(suffix)]


def succeeded(fabro: FakeFabro, **kw: Any) -> dict[str, Any]:
    run = make_run("succeeded", title="Add rate limiting", **kw)
    fabro.add(run)
    return run


async def test_a_succeeded_run_gets_create_pull_request_and_the_card_follows_the_creation(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = succeeded(fabro)
    card = await card_of(user, run["id"])
    block = ship_block(card)
    assert [e["text"]["text"] for e in block["elements"]] == ["Create pull request"]
    first, second = await asyncio.gather(
        click(user, block, "steer:create_pr"), click(user, block, "steer:create_pr", who=BOB)
    )
    await wait_for(lambda: any("opened by" in json.dumps(r) for r in slack.responses_to(first)), timeout=5)
    assert posted(fabro, "/pull_request") == [{"force": False}]  # a double click asks once
    final = [r for r in slack.responses_to(first) if "opened by" in json.dumps(r)][-1]
    assert final["replace_original"] is True
    assert "Pull request <https://github.com/demo/api/pull/7|#7> opened by <@U123ADA>" in json.dumps(final)
    polls = fabro.calls(f"/api/v1/runs/{run['id']}/pull_request/creation")
    assert len(polls) == fabro.creation_polls + 1  # followed through the relative Location until it ended
    told = json.dumps(slack.responses_to(second))
    assert "already creating this run's pull request" in told or "Already done" in told


async def test_a_creation_that_fails_says_why(user: SlackUser, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = succeeded(fabro)
    fabro.creation_error = "The branch has no commits to propose."
    url = await click(user, ship_block(await card_of(user, run["id"])), "steer:create_pr")
    await wait_for(lambda: any("could not be created" in json.dumps(r) for r in slack.responses_to(url)), timeout=5)
    assert "The branch has no commits to propose." in json.dumps(slack.responses_to(url))


async def test_a_failed_creation_can_be_asked_for_again(user: SlackUser, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = succeeded(fabro)
    fabro.creation_error = "GitHub said no."
    block = ship_block(await card_of(user, run["id"]))
    url = await click(user, block, "steer:create_pr")
    await wait_for(lambda: any("GitHub said no." in json.dumps(r) for r in slack.responses_to(url)), timeout=5)
    fabro.creation_error = None
    again = await click(user, block, "steer:create_pr")
    await wait_for(lambda: any("opened by" in json.dumps(r) for r in slack.responses_to(again)), timeout=5)
    assert not any("Already done" in json.dumps(r) for r in slack.responses_to(again))
    assert posted(fabro, "/pull_request") == [{"force": False}, {"force": False}]


@pytest.mark.parametrize("status", [404, 500, 502, 503])
async def test_polling_a_creation_outlives_a_transient_404_or_5xx(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, status: int
) -> None:
    run = succeeded(fabro)
    fabro.fail_next(status, count=2, path_prefix=f"/api/v1/runs/{run['id']}/pull_request/creation")
    url = await click(user, ship_block(await card_of(user, run["id"])), "steer:create_pr")
    await wait_for(lambda: any("opened by" in json.dumps(r) for r in slack.responses_to(url)), timeout=10)
    assert not any("could not be created" in json.dumps(r) for r in slack.responses_to(url))


async def test_a_root_relative_location_is_followed_on_fabros_own_origin(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = succeeded(fabro)
    fabro.creation_location = f"/api/v1/runs/{run['id']}/pull_request/creation"
    url = await click(user, ship_block(await card_of(user, run["id"])), "steer:create_pr")
    await wait_for(lambda: any("opened by" in json.dumps(r) for r in slack.responses_to(url)), timeout=5)


async def test_the_token_is_never_sent_to_a_location_on_another_host(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    heard: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        heard.append(dict(request.headers))
        return web.json_response({})

    app = web.Application()
    app.add_routes([web.get("/{tail:.*}", elsewhere)])
    runner, port = await serve(app)
    try:
        run = succeeded(fabro)
        fabro.creation_location = f"http://localhost:{port}/api/v1/runs/{run['id']}/pull_request/creation"
        url = await click(user, ship_block(await card_of(user, run["id"])), "steer:create_pr")
        await wait_for(lambda: any("another server" in json.dumps(r) for r in slack.responses_to(url)), timeout=5)
        assert heard == []
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("trouble", "told"),
    [
        ("has_one", "This run already has a pull request"),  # seen when Fabro is read again first
        (409, "This run already has a pull request"),  # someone else was faster, in Fabro
        (503, "GitHub is unavailable to Fabro right now"),
    ],
)
async def test_create_pull_request_troubles_are_explained(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, trouble: str | int, told: str
) -> None:
    run = succeeded(fabro)
    block = ship_block(await card_of(user, run["id"]))
    if trouble == "has_one":
        fabro.open_pull_request(run["id"])
    else:
        assert isinstance(trouble, int)
        fabro.fail_next(trouble, path_prefix=f"/api/v1/runs/{run['id']}/pull_request")
    url = await click(user, block, "steer:create_pr")
    await wait_for(lambda: any(told in r["text"] for r in slack.responses_to(url)))
    assert len(posted(fabro, "/pull_request")) == (0 if trouble == "has_one" else 1)


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
async def test_merge_asks_how_then_shows_what_then_merges_once(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, method: str
) -> None:
    run = succeeded(fabro)
    fabro.open_pull_request(run["id"], number=12, title="Add rate limiting to auth", additions=50, deletions=5)
    block = ship_block(await card_of(user, run["id"]))
    assert [e["text"]["text"] for e in block["elements"]] == ["Merge…", "Close pull request…"]
    url = await click(user, block, "steer:merge")
    await wait_for(lambda: slack.views)
    how = slack.views[-1]
    option = next(o for o in how["blocks"][1]["element"]["options"] if o["value"] == method)
    state = {"merge_method": {"merge_method": {"type": "radio_buttons", "selected_option": option}}}
    status, ack = await user.submit_view(how, {}, state=state)
    assert status == 200
    confirm = json.loads(ack)["view"]  # the same window, updated to show what will be merged
    shown = json.dumps(confirm["blocks"], ensure_ascii=False)
    assert (
        "#12" in shown and "Add rate limiting to auth" in shown and "+50 −5 in 4 file(s)" in shown and method in shown
    )
    assert posted(fabro, "/merge") == []  # nothing merged before the final submit
    await user.submit_view(confirm, {})
    await wait_for(lambda: slack.responses_to(url))
    assert posted(fabro, "/merge") == [{"method": method}]
    assert f"Merged by <@U123ADA> ({method})" in json.dumps(slack.responses_to(url)[-1])


def told(slack: FakeSlack, url: str) -> str:
    """What the person was told after a window: on its card's response URL, or ephemerally."""
    said = [json.dumps(r) for r in slack.responses_to(url)]
    return "\n".join(said + [json.dumps(c.args) for c in slack.calls_to("chat.postEphemeral")])


async def close_window(user: SlackUser, block: dict[str, Any], *, who: str = ADA) -> tuple[str, dict[str, Any]]:
    """Close pull request… opens a window for `who`: the response URL of the card, and the window."""
    opened = len(user.slack.views)
    url = await click(user, block, "steer:close_pr", who=who)
    await wait_for(lambda: len(user.slack.views) > opened)
    return url, user.slack.views[-1]


async def test_close_is_refused_when_the_pull_request_was_already_merged(user: SlackUser, fabro: FakeFabro) -> None:
    run = succeeded(fabro)
    fabro.open_pull_request(run["id"], merged=True, state="closed")
    url, window = await close_window(user, ship_block(await card_of(user, run["id"])))
    await user.submit_view(window, {})
    await wait_for(lambda: "already merged" in told(user.slack, url))
    assert posted(fabro, "/close") == []


async def test_close_asks_in_a_window_then_closes_once_and_the_card_says_who(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = succeeded(fabro)
    fabro.open_pull_request(run["id"])
    block = ship_block(await card_of(user, run["id"]))
    url, window = await close_window(user, block)
    assert "Pull request #7" in json.dumps(window["blocks"]) and window["submit"]["text"] == "Close it"
    assert posted(fabro, "/close") == []  # nothing closed before the window's Close it
    await user.submit_view(window, {})
    await wait_for(lambda: slack.responses_to(url))
    assert "Pull request closed by <@U123ADA>" in json.dumps(slack.responses_to(url)[-1])
    again, bobs = await close_window(user, block, who=BOB)
    await user.submit_view(bobs, {}, user=BOB)
    await wait_for(lambda: "Already done" in told(slack, again))
    assert len(posted(fabro, "/close")) == 1


@pytest.mark.parametrize(
    ("status", "told"),
    [(502, "GitHub refused"), (503, "GitHub is unavailable"), (400, "does not apply"), (404, "no pull request")],
)
async def test_merge_errors_are_explained(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, status: int, told: str
) -> None:
    run = succeeded(fabro)
    fabro.open_pull_request(run["id"])
    block = ship_block(await card_of(user, run["id"]))
    url = await click(user, block, "steer:merge")
    await wait_for(lambda: slack.views)
    how = slack.views[-1]
    state = {"merge_method": {"merge_method": {"type": "radio_buttons", "selected_option": {"value": "squash"}}}}
    _, ack = await user.submit_view(how, {}, state=state)
    fabro.fail_next(status, path_prefix=f"/api/v1/runs/{run['id']}/pull_request/merge")
    await user.submit_view(json.loads(ack)["view"], {})
    await wait_for(lambda: slack.calls_to("chat.postEphemeral") or slack.responses_to(url))
    said = json.dumps([c.args for c in slack.calls_to("chat.postEphemeral")] + slack.responses_to(url))
    assert told in said
