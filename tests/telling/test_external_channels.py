"""Channels shared with another organisation (Slack Connect): with `EXTERNAL_CHANNELS=minimal` (the
default) everything the bot posts there for everyone shows a run's status, title and link only; a
reply only its asker sees shows everything; `full` shows everything everywhere."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.blocks.routing import Target, control_block_id
from bot.core.exposure import Exposure, ExternalChannels
from bot.slack.channels import Exposures
from bot.slack.clients import slack_client
from tests.conftest import SlackUser, event_body, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import MANIFEST_SCOPES, FakeSlack, Message, dm_of

SHARED = "C0SHARED"
WEB = "https://fabro.example.com"
QUESTION = "Drop the users table in production?"
FAILURE = "Stage `verify` failed: SECRET_TOKEN=abc123 leaked in the output"
STEER = "use the customer's staging database"

StartBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def shared(slack: FakeSlack) -> FakeSlack:
    slack.external.add(SHARED)
    return slack


async def started(start_bot: StartBot, tmp_path: Path, **settings: Any) -> Bot:
    bot = await start_bot(
        alert_channel=SHARED,
        alert_pace=0.0,
        database_url=f"sqlite:///{tmp_path}/external.db",
        fabro_event_stream=False,
        **settings,
    )
    await bot.alerter.cycle()  # past its first look at Fabro: what happens from now on is news
    return bot


@pytest.fixture
async def bot(start_bot: StartBot, shared: FakeSlack, tmp_path: Path) -> Bot:
    return await started(start_bot, tmp_path)


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def shown(message: Message) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


def failing_and_asking(fabro: FakeFabro) -> tuple[dict[str, Any], dict[str, Any]]:
    failed = make_run("running", title="Add rate limiting")
    asking = make_run("running", title="Migrate the users table")
    fabro.add(failed, asking)
    fabro.sandbox_ready(failed["id"])
    fabro.fail(failed["id"], FAILURE)
    fabro.ask(asking["id"], {"id": "q-1", "text": QUESTION, "question_type": "yes_no"})
    return failed, asking


def assert_minimal(message: Message, title: str) -> None:
    text = shown(message)
    assert QUESTION not in text and "SECRET_TOKEN" not in text and STEER not in text
    assert title in text and "Open in Fabro" in text and "shared with another organisation" in text
    assert not [b for b in message.blocks if b["type"] == "actions" and not b["block_id"].startswith("links:")]


async def test_alerts_in_a_shared_channel_carry_no_question_or_failure_text_also_once_edited(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    failed, asking = failing_and_asking(fabro)
    await bot.alerter.cycle()
    posted = slack.posts(SHARED)
    assert len(posted) == 2
    by_title = {m.text.split(" — ")[0]: m for m in posted}
    assert_minimal(by_title["Add rate limiting"], "Add rate limiting")
    assert_minimal(by_title["Migrate the users table"], "Migrate the users table")
    assert sorted(slack.alert_keys(SHARED)) == sorted(
        [fabro.failed_key(failed["id"]), f"question:{asking['id']}:q-1"]
    )  # the metadata that finds them again after a crash is kept
    assert len(slack.calls_to("conversations.info")) == 1  # asked once, then remembered
    fabro.answer(asking["id"], "q-1", {"kind": "yes"})
    await bot.alerter.cycle()
    edited = by_title["Migrate the users table"]
    assert edited.edits == 1
    assert_minimal(edited, "Migrate the users table")
    assert slack.violations == []


async def test_full_shows_shared_channels_everything_without_asking_slack(
    start_bot: StartBot, shared: FakeSlack, fabro: FakeFabro, tmp_path: Path
) -> None:
    bot = await started(start_bot, tmp_path, external_channels="full")
    failing_and_asking(fabro)
    await bot.alerter.cycle()
    everything = " ".join(shown(m) for m in shared.posts(SHARED))
    assert QUESTION in everything and "SECRET_TOKEN" in everything
    assert shared.calls_to("conversations.info") == []


async def test_a_channel_slack_cannot_describe_is_treated_as_shared_and_logged_once(
    start_bot: StartBot, slack: FakeSlack, fabro: FakeFabro, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slack.scopes = tuple(s for s in MANIFEST_SCOPES if s not in ("channels:read", "groups:read"))
    caplog.set_level(logging.WARNING, logger="bot.slack.channels")
    bot = await started(start_bot, tmp_path)
    failing_and_asking(fabro)
    await bot.alerter.cycle()
    assert len(slack.posts(SHARED)) == 2
    for message in slack.posts(SHARED):
        assert QUESTION not in shown(message) and "SECRET_TOKEN" not in shown(message)
    warned = [r for r in caplog.records if "cannot tell whether" in r.getMessage()]
    assert len(warned) == 1 and "channels:read" in warned[0].getMessage()


async def test_a_direct_message_is_never_shared_and_slack_is_not_asked(slack: FakeSlack) -> None:
    exposures = Exposures(slack_client(slack.bot_token, slack.api_url), ExternalChannels.MINIMAL)
    assert await exposures.of(dm_of("U123ADA")) is Exposure.FULL
    assert await exposures.of("C123OPS") is Exposure.FULL
    slack.external.add("C0LATER")
    assert await exposures.of("C0LATER") is Exposure.MINIMAL
    assert await exposures.of("COMPOSER") is Exposure.MINIMAL  # a link being typed: anywhere, so the least
    assert [c.args["channel"] for c in slack.calls_to("conversations.info")] == ["C123OPS", "C0LATER"]


async def test_runs_follow_posts_a_minimal_card_to_a_shared_channel_while_runs_id_answers_the_asker_in_full(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Migrate the users table")
    fabro.add(run)
    fabro.ask(run["id"], {"id": "q-1", "text": QUESTION, "question_type": "yes_no"})
    _, _, url = await user.command(run["id"], channel=SHARED)
    private = await user.reply(url)
    assert private.get("response_type", "ephemeral") == "ephemeral" and QUESTION in json.dumps(private)
    _, _, url = await user.command(f"follow {run['id']}", channel=SHARED)
    assert "Following run" in (await user.reply(url))["text"]
    [card] = [m for m in slack.posts(SHARED) if m.text.startswith("Migrate")]
    assert_minimal(card, "Migrate the users table")
    fabro.answer(run["id"], "q-1", {"kind": "yes"})
    fabro.stage(run["id"], "verify", "failed", will_retry=True, failure={"message": FAILURE})
    fabro.fail(run["id"], FAILURE)
    await bot.follower.sync_all()
    await wait_for(lambda: slack.replies(card))
    for reply in slack.replies(card):  # the end is told, as the minimal card; the stage's failure is not
        assert_minimal(reply, "Migrate the users table")
    assert len(slack.replies(card)) == 1 and ":x: *failed*" in shown(slack.replies(card)[0])
    await bot.follower.editor.drain()
    assert_minimal(card, "Migrate the users table")
    assert slack.violations == []


async def test_what_only_the_asker_sees_in_a_shared_channel_shows_everything(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("succeeded", reason="completed", title="Add rate limiting")
    fabro.add(run)
    fabro.change(run["id"], "src/limiter.py", added=5, removed=2)
    _, _, url = await user.command(f"changes {run['id']}", channel=SHARED)
    reply = await user.reply(url)
    assert reply.get("response_type", "ephemeral") == "ephemeral"
    assert "src/limiter.py" in json.dumps(reply["blocks"]) and "shared with another organisation" not in reply["text"]
    assert slack.posts(SHARED) == []  # and nothing was posted for the channel


async def test_a_shared_channels_thread_refuses_changes_logs_graph_and_ask_saying_where_to_get_them(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Add rate limiting")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    fabro.change(run["id"], "src/limiter.py", added=5, removed=2)
    fabro.fail(run["id"], FAILURE)
    await bot.alerter.cycle()
    [alert] = slack.posts(SHARED)
    block = control_block_id("inspect", Target(run["id"]))
    for i, look in enumerate(("changes", "logs", "graph")):  # buttons of a card posted before the channel was shared
        await user.click(
            {"action_id": f"steer:{look}", "value": look, "action_ts": f"170000000{i}.000001"},
            block_id=block,
            channel=SHARED,
            message_ts=alert.ts,
            ephemeral=False,
        )
    await user.mention("why did it fail?", channel=SHARED, thread_ts=alert.ts)
    await wait_for(lambda: len(slack.replies(alert)) == 4)
    said = [shown(m) for m in slack.replies(alert)]
    assert all("shared with another organisation" in s for s in said)
    for words in (f"/runs changes {run['id']}", f"/runs logs {run['id']}", "Fabro's answers are not posted here"):
        assert any(words in s for s in said)
    assert slack.shared_files() == [] and "limiter" not in " ".join(said) and "SECRET_TOKEN" not in " ".join(said)
    looked = [r.path for r in fabro.requests if r.path.split("/")[-1] in ("files", "logs", "graph", "sessions")]
    assert looked == []  # nothing was even read from Fabro


async def test_a_steer_in_a_shared_channels_thread_is_echoed_without_its_words(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Add rate limiting")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    _, _, url = await user.command(f"follow {run['id']}", channel=SHARED)
    await user.reply(url)
    [card] = slack.posts(SHARED)
    await user.mention(f"steer {STEER}", channel=SHARED, thread_ts=card.ts)
    await wait_for(lambda: slack.replies(card))
    [echo] = slack.replies(card)
    assert "to the agent" in echo.text and STEER not in shown(echo)
    steered = [r.body for r in fabro.calls(f"/api/v1/runs/{run['id']}/steer", method="POST")]
    assert steered == [{"text": STEER}]  # the agent itself hears every word


def link_shared(url: str, channel: str, **envelope: Any) -> str:
    event = {
        "type": "link_shared",
        "channel": channel,
        "user": "U123ADA",
        "message_ts": "1795870000.000100",
        "links": [{"domain": "fabro.example.com", "url": url}],
    }
    return json.dumps({**json.loads(event_body(event)), **envelope})


@pytest.mark.parametrize("told_by", ["conversations.info", "the event"])
async def test_a_link_unfurled_in_a_shared_channel_shows_status_title_and_link_only(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, told_by: str
) -> None:
    run = make_run("blocked", title="Migrate the users table")
    run["current_question"] = {"id": "q", "text": QUESTION, "question_type": "yes_no"}
    fabro.add(run)
    url = f"{WEB}/runs/{run['id']}"
    channel = SHARED if told_by == "conversations.info" else "C0CONNECT"
    body = (
        link_shared(url, channel, is_ext_shared_channel=True) if told_by == "the event" else link_shared(url, channel)
    )
    status, _ = await user.post(body, content_type="application/json")
    assert status == 200
    await wait_for(lambda: slack.calls_to("chat.unfurl"))
    [call] = slack.calls_to("chat.unfurl")
    unfurls = call.args["unfurls"] if isinstance(call.args["unfurls"], dict) else json.loads(call.args["unfurls"])
    card = json.dumps(unfurls[url], ensure_ascii=False)
    assert "Migrate the users table" in card and QUESTION not in card and "shared with another organisation" in card
    assert '"actions"' not in card  # an unfurl never has buttons
    if told_by == "the event":
        assert slack.calls_to("conversations.info") == []  # Slack said so with the event
