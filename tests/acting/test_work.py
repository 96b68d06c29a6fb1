"""Work started from Slack: a channel set up for a repository, `/runs new <goal>` confirmed with
Start, a run created and started once on Fabro, owned by the person, followed in the channel,
and every refusal said in one sentence. All through signed requests against the fakes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.acting.steering import Where
from bot.app import Bot
from bot.core.drafts import Draft
from tests.conftest import SlackUser, StartBot, wait_for, wait_until
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack

ADA, BOB = "U123ADA", "U456BOB"
CHANNEL = "C123OPS"
_BOTS: dict[str, Bot] = {}


@pytest.fixture
async def user(start_bot: StartBot, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackUser]:
    bot: Bot = await start_bot(database_url=f"sqlite:///{tmp_path}/work.db", repositories="acme/api,acme/web")
    async with aiohttp.ClientSession() as session:
        person = SlackUser.of(bot, slack, session)
        _BOTS[person.url] = bot
        yield person


def created(fabro: FakeFabro) -> list[dict[str, Any]]:
    return [r for r in fabro.runs.values() if r["id"] in fabro.manifests]


def buttons(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["text"]["text"]: e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]}


async def said(user: SlackUser, words: str) -> dict[str, Any]:
    _, ack, url = await user.command(words)
    if ack:
        reply: dict[str, Any] = json.loads(ack)
        return reply
    return await user.reply(url)


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or message.get("text"))


async def press(user: SlackUser, button: dict[str, Any], who: str = ADA) -> str:
    _, _, url = await user.click(
        {"action_id": button["action_id"], "value": button["value"]}, block_id="work:buttons", user=who
    )
    return url


async def test_from_a_fresh_channel_new_work_is_confirmed_then_started_once_and_followed(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    announced = await said(user, "setup repo:acme/api branch:main")
    assert announced["response_type"] == "in_channel" and "acme/api" in text_of(announced)  # the channel hears it
    card = await said(user, "new the login test is flaky since #412, make it {{ deterministic }}")
    assert card["response_type"] == "ephemeral" and created(fabro) == []
    shown = text_of(card)
    assert "acme/api" in shown and "main" in shown and "implement" in shown and "deterministic" in shown
    go = buttons(card)["Start"]
    # A triple click, and Bob replaying Ada's Start (the confirmation is hers alone: he is told so).
    await asyncio.gather(press(user, go), press(user, go), press(user, go, who=BOB))
    await wait_for(lambda: slack.posts(CHANNEL), timeout=10)  # the live card
    [run] = created(fabro)
    assert len(fabro.calls("/api/v1/runs", method="POST")) == 1
    assert run["lifecycle"]["status"]["kind"] == "runnable"  # started, not left submitted
    assert run["goal"] == "the login test is flaky since #412, make it {{ deterministic }}"
    assert run["labels"]["slack_user"] == ADA and run["labels"]["slack_channel"] == CHANNEL
    intent = run["labels"]["slack_intent"]
    assert intent in fabro.user_agents[run["id"]] and fabro.user_agents[run["id"]].startswith("fabro-slack-bot/")
    bot = _BOTS[user.url]
    indexed = await bot.store.indexed_run(run["id"])
    assert indexed is not None and indexed.owner == ADA  # the person who confirmed owns it
    await wait_until(lambda: bot.store.follows(run["id"]))  # followed in the channel: a live card
    assert len(slack.posts(CHANNEL)) == 2  # who started what, and the live card


@pytest.mark.parametrize(
    ("setup", "words", "told"),
    [
        (None, "new fix it", "no repository to work on yet"),
        ("setup repo:acme/api", "new    ", "takes what you want done"),
        (None, "setup repo:evil/repo", "is not in this bot"),
        (None, "setup repo:acme/api workflow:nope", "no workflow"),
    ],
)
async def test_every_refusal_is_one_sentence_and_nothing_is_created(
    user: SlackUser, fabro: FakeFabro, setup: str | None, words: str, told: str
) -> None:
    if setup:
        await said(user, setup)
    reply = await said(user, words)
    assert told in text_of(reply) and created(fabro) == [] and "Traceback" not in text_of(reply)


async def test_setup_shows_and_clears_what_the_channel_works_on(user: SlackUser, slack: FakeSlack) -> None:
    assert "no repository" in text_of(await said(user, "setup"))
    await said(user, "setup repo:acme/web workflow:implement")
    assert "acme/web" in text_of(await said(user, "setup"))
    assert "cleared" in text_of(await said(user, "setup off"))
    assert "no repository" in text_of(await said(user, "setup"))


async def test_a_400_from_fabro_and_a_failed_start_are_each_explained(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await said(user, "setup repo:acme/api")
    fabro.start_fails = "start has already been requested"
    card = await said(user, "new add a health endpoint")
    url = await press(user, buttons(card)["Start"])
    reply = await user.reply(url)
    [run] = created(fabro)
    assert "was created but not started" in text_of(reply) and run["id"] in text_of(reply)
    fabro.start_fails = None
    url = await press(user, buttons(card)["Start"])  # Start again: the same run is started, none created
    await wait_for(lambda: run["lifecycle"]["status"]["kind"] == "runnable", timeout=10)
    assert len(created(fabro)) == 1


async def test_after_a_crash_between_create_and_start_the_same_run_is_started_not_created_again(
    user: SlackUser, fabro: FakeFabro
) -> None:
    """The record was left pending by a process that died after Fabro created the run: a later
    Start of the same confirmation finds the run by its intent label and starts it."""
    bot = _BOTS[user.url]
    await said(user, "setup repo:acme/api")
    draft = Draft("fix the build", "fix the build", "acme/api", None, "implement", CHANNEL, None)
    intent = "ab12cd34ef56ab12cd34"
    # What the dead process did: recorded the action, and Fabro created the run.
    from bot.fabro.manifest import build_manifest, load_workflow

    manifest = build_manifest(
        load_workflow(None, "implement"),
        goal=draft.goal,
        title=draft.title,
        repository="acme/api",
        branch=None,
        labels=draft.labels(ADA, intent),
    )
    await bot.fabro.create_run(manifest, user_agent="fabro-slack-bot/0 (slack; intent ab12cd34ef56ab12cd34)")
    from datetime import timedelta

    from bot.core.keys import ActionKey, Verb
    from bot.core.records import Action

    long_ago = bot.clock() - timedelta(minutes=10)
    await bot.store.begin_action(
        Action(ActionKey.of(Verb.START, intent), Verb.START, ADA, long_ago), stale_before=long_ago
    )
    settled = await bot.steering.start_work(Where(ADA, CHANNEL), draft, intent)
    [run] = created(fabro)
    assert settled.run.id == run["id"] and run["lifecycle"]["status"]["kind"] == "runnable"


# -- from a mention ----------------------------------------------------------------------------


def mention_event(text: str, *, thread_ts: str | None = None, user: str = ADA, shared: bool = False) -> str:
    from tests.conftest import event_body

    event = {"type": "app_mention", "user": user, "text": f"<@U0BOT> {text}", "ts": f"{__import__('time').time():.6f}"}
    event |= {"channel": CHANNEL} | ({"thread_ts": thread_ts} if thread_ts else {})
    body = json.loads(event_body(event))
    body["authorizations"] = [{"user_id": "U0BOT", "is_bot": True}]
    if shared:
        body["is_ext_shared_channel"] = True
    return json.dumps(body)


def confirmations(slack: FakeSlack) -> list[dict[str, Any]]:
    found = []
    for call in slack.calls_to("chat.postEphemeral"):
        blocks = call.args.get("blocks")
        found.append({**call.args, "blocks": json.loads(blocks) if isinstance(blocks, str) else blocks})
    return found


async def test_a_mention_in_a_discussion_thread_asks_with_the_thread_as_named_plain_context(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await said(user, "setup repo:acme/api")
    slack.names.update({"U789CAT": "cat", BOB: "bob"})
    parent = slack.say(CHANNEL, "U789CAT", "login test fails 1 in 5 on CI since &lt;Tuesday&gt;")
    slack.say(
        CHANNEL,
        BOB,
        "looks like a race with <@U789CAT>'s cookie change <https://ci.example/1|the run>",
        thread_ts=parent,
    )
    await user.post(mention_event("make it deterministic please", thread_ts=parent), content_type="application/json")
    await wait_for(lambda: confirmations(slack))
    [card] = confirmations(slack)
    assert card["user"] == ADA and card["thread_ts"] == parent
    shown = json.dumps(card["blocks"])
    assert "make it deterministic please" in shown
    assert "cat: login test fails 1 in 5 on CI since &lt;Tuesday&gt;" in shown  # plain text, escaped for Slack
    assert "bob: looks like a race with @cat's cookie change the run (https://ci.example/1)" in shown
    assert "<@U0BOT>" not in shown
    await press(user, buttons(card)["Start"])
    await wait_for(lambda: created(fabro), timeout=10)
    [run] = created(fabro)
    assert run["goal"].startswith(
        "make it deterministic please\n\nEarlier in the Slack thread:\n"
        "- cat: login test fails 1 in 5 on CI since <Tuesday>"
    )
    assert run["labels"]["slack_thread"] == parent
    # Who started what is said in the thread it was asked in, and the live card follows the run there.
    await wait_for(lambda: len([m for m in slack.posts(CHANNEL, top_level=False) if m.thread_ts == parent]) == 2)
    assert slack.posts(CHANNEL) == []  # nothing at the channel's top level
    bot = _BOTS[user.url]
    [follow] = await wait_until(lambda: bot.store.follows(run["id"]))
    assert follow.thread_ts == parent
    # The thread is now the run's: a mention there speaks to the run, it asks for no new work.
    fabro.runs[run["id"]]["lifecycle"]["status"] = {"kind": "running"}
    await user.post(mention_event("steer use the staging db", thread_ts=parent), content_type="application/json")
    await wait_for(lambda: fabro.calls(f"/api/v1/runs/{run['id']}/steer", method="POST"), timeout=10)
    assert len(confirmations(slack)) == 1


async def test_in_a_channel_shared_with_another_organisation_only_the_mention_is_used(
    user: SlackUser, slack: FakeSlack
) -> None:
    await said(user, "setup repo:acme/api")
    parent = slack.say(CHANNEL, "U789CAT", "our secret roadmap")
    await user.post(mention_event("fix the typo", thread_ts=parent, shared=True), content_type="application/json")
    await wait_for(lambda: confirmations(slack))
    shown = json.dumps(confirmations(slack)[0]["blocks"])
    assert "fix the typo" in shown and "roadmap" not in shown


async def test_a_channel_slack_describes_as_shared_outside_uses_only_the_mention_too(
    user: SlackUser, slack: FakeSlack
) -> None:
    await said(user, "setup repo:acme/api")
    slack.external.add(CHANNEL)  # conversations.info says is_ext_shared; the event says nothing
    parent = slack.say(CHANNEL, "U789CAT", "our secret roadmap")
    await user.post(mention_event("fix the typo", thread_ts=parent), content_type="application/json")
    await wait_for(lambda: confirmations(slack))
    shown = json.dumps(confirmations(slack)[0]["blocks"])
    assert "fix the typo" in shown and "roadmap" not in shown


async def test_a_top_level_mention_in_a_channel_not_set_up_says_so_once_even_when_slack_resends_it(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    body = mention_event("fix the typo")
    await user.post(body, content_type="application/json")
    await user.post(body, content_type="application/json", headers={"x-slack-retry-num": "1"})
    await wait_for(lambda: confirmations(slack))
    await asyncio.sleep(0.2)
    [told] = confirmations(slack)
    assert "no repository to work on yet" in json.dumps(told["blocks"]) and created(fabro) == []


async def test_edit_changes_goal_title_branch_and_workflow_and_its_start_starts_that(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    await said(user, "setup repo:acme/api branch:main")
    card = await said(user, "new first idea")
    await press(user, buttons(card)["Edit…"])
    await wait_for(lambda: slack.views)
    window = slack.views[-1]
    assert window["callback_id"] == "work_modal"
    typed = {
        "work_goal": {"work_goal": {"type": "plain_text_input", "value": "the better idea {% raw %}"}},
        "work_title": {"work_title": {"type": "plain_text_input", "value": "A better title"}},
        "work_branch": {"work_branch": {"type": "plain_text_input", "value": "release/2.0"}},
        "work_workflow": {"work_workflow": {"type": "static_select", "selected_option": {"value": "implement"}}},
    }
    status, _ = await user.submit_view(window, {}, state=typed)
    assert status == 200
    await wait_for(lambda: created(fabro), timeout=10)
    [run] = created(fabro)
    manifest = fabro.manifests[run["id"]]
    assert run["goal"] == "the better idea {% raw %}" and run["title"] == "A better title"
    assert manifest["git"]["branch"] == "release/2.0"
    await press(user, buttons(card)["Start"])  # the card's Start after the window's: the same intent, nothing more
    await asyncio.sleep(0.3)
    assert len(created(fabro)) == 1


async def test_the_edit_window_keeps_itself_open_for_a_bad_branch(user: SlackUser, slack: FakeSlack) -> None:
    await said(user, "setup repo:acme/api")
    card = await said(user, "new something")
    await press(user, buttons(card)["Edit…"])
    await wait_for(lambda: slack.views)
    typed = {
        "work_goal": {"work_goal": {"type": "plain_text_input", "value": "something"}},
        "work_branch": {"work_branch": {"type": "plain_text_input", "value": "../etc"}},
        "work_workflow": {"work_workflow": {"type": "static_select", "selected_option": {"value": "implement"}}},
    }
    status, ack = await user.submit_view(slack.views[-1], {}, state=typed)
    assert status == 200 and json.loads(ack)["errors"] == {"work_branch": "That is not a branch name."}


async def test_the_questions_of_a_run_started_from_slack_reach_the_person_who_confirmed(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    from tests.acting.test_steering import question
    from tests.fakes.slack import dm_of

    await said(user, "setup repo:acme/api")  # Ada sets the channel up
    _, _, url = await user.command("new add a health endpoint", user=BOB)
    card = await user.reply(url)
    await press(user, buttons(card)["Start"], who=BOB)  # Bob asks and confirms: the run is Bob's
    await wait_for(lambda: created(fabro), timeout=10)
    [run] = created(fabro)
    bot = _BOTS[user.url]
    await wait_until(lambda: bot.store.indexed_run(run["id"]))
    fabro.runs[run["id"]]["lifecycle"]["status"] = {"kind": "running"}
    fabro.ask(run["id"], question("yes_no"))
    await bot.alerter.cycle()
    await bot.alerter.cycle()
    await wait_for(lambda: slack.posts(dm_of(BOB)), timeout=10)
    assert "A yes_no question?" in str(slack.posts(dm_of(BOB))[0].blocks) and slack.posts(dm_of(ADA)) == []


async def test_a_workflow_the_validator_rejects_is_refused_with_its_reasons_and_nothing_created(
    start_bot: StartBot, slack: FakeSlack, fabro: FakeFabro, tmp_path: Path
) -> None:
    (tmp_path / "flows" / "broken").mkdir(parents=True)
    (tmp_path / "flows" / "broken" / "workflow.fabro").write_text('digraph B { plan [prompt="@missing.md"] }')
    (tmp_path / "flows" / "broken" / "missing.md").write_text("")  # bundled, but the graph has no start
    bot = await start_bot(
        database_url=f"sqlite:///{tmp_path}/w.db", repositories="acme/api", workflows_dir=str(tmp_path / "flows")
    )
    async with aiohttp.ClientSession() as session:
        person = SlackUser.of(bot, slack, session)
        await said(person, "setup repo:acme/api workflow:broken")
        card = await said(person, "new do it")
        reply = await person.reply(await press(person, buttons(card)["Start"]))
    told = text_of(reply)
    assert "The workflow cannot run: `broken`:" in told and "exactly one start node" in told
    assert created(fabro) == [] and fabro.calls("/api/v1/runs", method="POST") == []


async def test_a_400_from_fabro_at_create_is_one_sentence_and_nothing_is_started(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await said(user, "setup repo:acme/api")
    fabro.create_refusal = 'sandbox provider "docker" is disabled by server.sandbox.providers.docker.enabled'
    card = await said(user, "new add a health endpoint")
    told = text_of(await user.reply(await press(user, buttons(card)["Start"])))
    assert "Fabro refused to create the run: sandbox provider" in told and "Nothing was started" in told
    assert created(fabro) == [] and "Traceback" not in told
