"""The one outbox: what the engine decided and what a sender renders on the spot both reach Slack once,
with their key in the message, through the same claims; the engine decides and the outbox only delivers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from bot.app import Bot
from bot.core.keys import AlertKey, AlertKind
from bot.core.outcomes import OutcomeVerb
from bot.core.records import Alert, AlertState
from tests.conftest import StartBot
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack

CHANNEL = "C0OUTBOX"
ADA = "U123ADA"
QUESTION: dict[str, Any] = {
    "id": "q-ship",
    "text": "Ship it?",
    "stage": "deploy",
    "question_type": "yes_no",
    "options": [],
    "allow_freeform": False,
}


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    started: Bot = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/o.db")
    await started.alerter.cycle()  # past the first cycle: what happens now is news
    return started


async def record(bot: Bot, key: AlertKey, channel: str) -> Alert:
    return next(a for a in await bot.store.alerts_for_run(key.run_id) if a.key == key and a.channel == channel)


async def test_a_message_its_sender_posts_twice_reaches_the_conversation_once_with_its_key(
    bot: Bot, slack: FakeSlack
) -> None:
    key = AlertKey(AlertKind.UPDATE, "01KJW4MG800000000000000001", "note")
    assert await bot.outbox.post_once(key, CHANNEL, {"text": "A note"}) is True
    assert await bot.outbox.post_once(key, CHANNEL, {"text": "A note"}) is False
    assert [p.text for p in slack.posts(CHANNEL)] == ["A note"]
    assert slack.alert_keys(CHANNEL) == [key.encode()]
    assert (await record(bot, key, CHANNEL)).state is AlertState.POSTED


async def test_a_post_slack_refused_is_recorded_and_sent_next_time_without_searching_for_it(
    bot: Bot, slack: FakeSlack
) -> None:
    key = AlertKey(AlertKind.UPDATE, "01KJW4MG800000000000000002", "remind-q-1")
    slack.failing["chat.postMessage"] = ["internal_error"]
    with pytest.raises(SlackApiError):
        await bot.outbox.post_once(key, CHANNEL, {"text": "Still waiting"})
    refused = await record(bot, key, CHANNEL)
    assert refused.state is AlertState.CLAIMED and refused.unposted and refused.last_error == "internal_error"
    assert await bot.outbox.post_once(key, CHANNEL, {"text": "Still waiting"}) is True
    assert [p.text for p in slack.posts(CHANNEL)] == ["Still waiting"]
    assert not slack.calls_to("conversations.history") and not slack.calls_to("conversations.replies")


async def test_an_announcement_the_channel_refuses_goes_to_the_person_once(bot: Bot, slack: FakeSlack) -> None:
    key = AlertKey(AlertKind.UPDATE, "01KJW4MG800000000000000003", "started")
    slack.unreachable[CHANNEL] = "not_in_channel"
    assert await bot.outbox.announce(key, [CHANNEL, ADA], {"text": "Started", "blocks": []}) == ADA
    assert await bot.outbox.announce(key, [CHANNEL, ADA], {"text": "Started", "blocks": []}) == ADA
    assert [p.text for p in slack.posts(ADA)] == ["Started"]
    outcome = (await record(bot, key, CHANNEL)).outcome
    assert outcome is not None and outcome.verb is OutcomeVerb.NOT_POSTED


async def test_the_engine_decides_and_the_outbox_alone_posts(bot: Bot, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = make_run("running", title="Release")
    fabro.add(run)
    fabro.ask(run["id"], QUESTION)
    report, fresh = await bot.alerter.decide()
    assert report.claimed == 1 and len(fresh.claims) == 1
    assert slack.posts(CHANNEL) == []  # deciding posts nothing
    await bot.outbox.deliver(report, fresh)
    assert report.posted == 1 and len(slack.posts(CHANNEL)) == 1


async def test_a_claim_left_behind_is_decided_again_by_the_engine_not_by_delivery(
    bot: Bot, start_bot: StartBot, tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Release")
    fabro.add(run)
    fabro.ask(run["id"], QUESTION)
    slack.failing["chat.postMessage"] = ["internal_error"]
    first = await bot.alerter.cycle()
    assert first.failed == 1 and slack.posts(CHANNEL) == []
    fabro.answer(run["id"], QUESTION["id"], {"kind": "yes"})  # answered in Fabro meanwhile
    for alert in await bot.store.alerts_for_run(run["id"]):  # due again now
        await bot.store.delivery_failed(alert.key, alert.channel, error="x", unposted=True, retry_at=bot.clock())
    await bot.stop()  # a restart: the new process holds nothing it could render on its own
    bot = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/o.db")
    report, fresh = await bot.alerter.decide()
    [(place, verdict)] = fresh.decided.items()
    assert place == (AlertKey(AlertKind.QUESTION, run["id"], QUESTION["id"]), CHANNEL) and verdict is None
    asked = len(fabro.calls())
    await bot.outbox.deliver(report, fresh)
    assert len(fabro.calls()) == asked  # delivery read nothing of Fabro to settle it
    settled = await record(bot, place[0], CHANNEL)
    assert settled.state is AlertState.RESOLVED
    assert settled.outcome is not None and settled.outcome.verb is OutcomeVerb.NOT_POSTED
    assert slack.posts(CHANNEL) == []
