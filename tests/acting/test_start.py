"""Starting runs from Slack: the picker window, /runs start <id> with its confirmation, once per
intent, announced in the channel (or by DM), and Fabro's refusals explained."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.app import Bot
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack

ADA, BOB = "U123ADA", "U456BOB"
CHANNEL = "C123OPS"


_BOTS: dict[str, Any] = {}


@pytest.fixture
async def user(start_bot: StartBot, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackUser]:
    bot: Bot = await start_bot(database_url=f"sqlite:///{tmp_path}/start.db")
    async with aiohttp.ClientSession() as session:
        person = SlackUser.of(bot, slack, session)
        _BOTS[person.url] = bot
        yield person


def user_bot(user: SlackUser) -> Any:
    return _BOTS[user.url]


def started(fabro: FakeFabro) -> list[dict[str, Any]]:
    return [r for r in fabro.runs.values() if r.get("automation")]


def buttons(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["text"]["text"]: e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]}


def intent_of(button: dict[str, Any]) -> str:
    intent: str = json.loads(button["value"])["i"]
    return intent


async def press(user: SlackUser, button: dict[str, Any], who: str = ADA) -> str:
    _, _, url = await user.click(
        {"action_id": button["action_id"], "value": button["value"]}, block_id="start:buttons", user=who
    )
    return url


async def test_start_with_an_id_confirms_then_starts_once_and_announces_it(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add_automation("nightly-deps", "Nightly dependency bumps", ref="develop")
    _, _, url = await user.command("start nightly-deps")
    card = await user.reply(url)
    assert card["response_type"] == "ephemeral"
    facts = json.dumps(card["blocks"])
    assert "Nightly dependency bumps" in facts and "demo/api-server" in facts and "develop" in facts
    assert "implement" in facts and started(fabro) == []  # nothing starts before Start is pressed
    go = buttons(card)["Start"]
    await asyncio.gather(press(user, go), press(user, go, who=BOB), press(user, go))  # a double (triple) click
    await wait_for(lambda: slack.posts(CHANNEL))
    assert len([r for r in fabro.calls(method="POST") if r.path == "/api/v1/automations/nightly-deps/runs"]) == 1
    [run] = started(fabro)
    [announcement] = slack.posts(CHANNEL)
    head = announcement.blocks[0]["text"]["text"]
    assert f"<@{ADA}> started" in head and "from *Nightly dependency bumps*" in head
    assert run["id"] in json.dumps(announcement.blocks)
    # The bot's own record says who started it: Fabro records the bot's token user.
    [action] = await user_bot(user).store.actions_for_run(intent_of(go))
    assert action.user_id == ADA and action.outcome is not None and action.outcome.run_id == run["id"]


async def test_two_start_commands_are_two_intents(user: SlackUser, fabro: FakeFabro, slack: FakeSlack) -> None:
    fabro.add_automation("triage", "Triage new issues")
    for _ in range(2):
        _, _, url = await user.command("start triage")
        await press(user, buttons(await user.reply(url))["Start"])
    await wait_for(lambda: len(started(fabro)) == 2)


async def test_cancel_starts_nothing_and_removes_the_card(user: SlackUser, fabro: FakeFabro, slack: FakeSlack) -> None:
    fabro.add_automation("triage", "Triage new issues")
    _, _, url = await user.command("start triage")
    reply_url = await press(user, buttons(await user.reply(url))["Cancel"])
    await wait_for(lambda: slack.responses_to(reply_url))
    assert slack.responses_to(reply_url)[-1].get("delete_original") is True and started(fabro) == []


async def test_an_unknown_id_gets_did_you_mean_among_the_automations(user: SlackUser, fabro: FakeFabro) -> None:
    fabro.add_automation("nightly-deps", "Nightly dependency bumps")
    fabro.add_automation("disabled-one", "Off", api=False)
    _, _, url = await user.command("start nightly-dep")
    said = (await user.reply(url))["blocks"][0]["text"]["text"]
    assert "no automation `nightly-dep`" in said and "Did you mean `nightly-deps`?" in said
    _, _, url = await user.command("start disabled-one")  # not startable: not offered either
    assert "no automation `disabled-one`" in (await user.reply(url))["blocks"][0]["text"]["text"]


@pytest.mark.parametrize(
    ("change", "told"),
    [
        ("remove", "no longer exists in Fabro"),
        ("disable", "no enabled api trigger"),
        ("409", "api trigger is turned off in Fabro"),
        ("422", "could not prepare the run's target"),
        ("404", "does not know that automation"),
    ],
)
async def test_fabros_refusals_are_explained(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, change: str, told: str
) -> None:
    automation = fabro.add_automation("triage", "Triage new issues")
    _, _, url = await user.command("start triage")
    go = buttons(await user.reply(url))["Start"]
    if change == "remove":
        fabro.automations.clear()
    elif change == "disable":
        automation["triggers"][0]["enabled"] = False
    elif change == "422":
        automation["target"]["repository"] = "gone/repo"
    elif change == "409":  # turned off in Fabro between the list and the start
        fabro.fail_next(409, path_prefix="/api/v1/automations/triage/runs", code="automation_api_trigger_disabled")
    else:
        fabro.fail_next(404, path_prefix="/api/v1/automations/triage/runs")
    reply_url = await press(user, go)
    await wait_for(lambda: slack.responses_to(reply_url))
    said = " ".join(r["text"] for r in slack.responses_to(reply_url))
    assert told in said, said
    assert slack.posts(CHANNEL) == []


async def test_where_the_bot_cannot_post_it_sends_the_card_by_dm(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add_automation("triage", "Triage new issues")
    slack.unreachable[CHANNEL] = "not_in_channel"
    _, _, url = await user.command("start triage")
    await press(user, buttons(await user.reply(url))["Start"])
    await wait_for(lambda: slack.posts(ADA))
    assert "started" in slack.posts(ADA)[0].blocks[0]["text"]["text"]


async def test_someone_outside_the_allowlist_cannot_start_runs(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(action_allowlist="U0BOSS", database_url=f"sqlite:///{tmp_path}/s.db")
    fabro.add_automation("triage", "Triage new issues")
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        _, _, url = await user.command("start triage")
        reply_url = await press(user, buttons(await user.reply(url))["Start"])
        await wait_for(lambda: slack.responses_to(reply_url))
    assert "may not start runs" in slack.responses_to(reply_url)[-1]["text"] and started(fabro) == []


async def test_start_alone_opens_a_window_at_once_and_fills_it_when_fabro_answers(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add_automation("triage", "Triage new issues")
    fabro.add_automation("off", "Not from Slack", api=False)
    fabro.latency = 0.3  # Fabro is slow: the window must not wait for it
    began = time.perf_counter()
    status, ack, _ = await user.command("start")
    assert status == 200 and ack == ""
    await wait_for(lambda: slack.views)
    assert time.perf_counter() - began < 3  # within the trigger's three seconds
    assert "Asking Fabro" in json.dumps(slack.views[0]["blocks"])
    await wait_for(lambda: "static_select" in json.dumps(slack.views[0]["blocks"]), timeout=5)
    fabro.latency = 0
    picker = slack.views[0]
    [select] = [b["element"] for b in picker["blocks"] if b["type"] == "input"]
    assert [o["value"] for o in select["options"]] == ["triage"]  # only automations with an enabled api trigger
    state = {"start_pick": {"start_pick": {"type": "static_select", "selected_option": select["options"][0]}}}
    for _ in range(2):  # the same window submitted twice (a retried request): one run
        status, _ = await user.submit_view(picker, {}, state=state)
        assert status == 200
    await wait_for(lambda: slack.posts(CHANNEL))
    assert len(started(fabro)) == 1


async def test_past_a_hundred_automations_the_window_searches(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    for i in range(130):
        fabro.add_automation(f"job-{i:03d}", f"Job {i:03d}", repository=f"demo/repo-{i % 7}")
    await user.command("start")
    await wait_for(lambda: bool(slack.views) and "external_select" in json.dumps(slack.views[0]["blocks"]), timeout=5)
    suggestion = {
        "type": "block_suggestion",
        "user": {"id": ADA},
        "team": {"id": "T111"},
        "api_app_id": "A111",
        "action_id": "start_pick",
        "block_id": "start_pick",
        "value": "job-12",
        "view": {"id": "V00000001"},
    }
    status, body = await user.post(urlencode({"payload": json.dumps(suggestion)}))
    assert status == 200
    assert [o["value"] for o in json.loads(body)["options"]] == [f"job-12{i}" for i in range(10)]
