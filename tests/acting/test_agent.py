"""Working with a running agent from Slack: Steer… (with or without interrupting it first), Interrupt,
Pause and Resume, and `@fabro-runs steer …` in an alert's thread; each sent once, every refusal explained."""

from __future__ import annotations

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

ADA = "U123ADA"
CHANNEL = "C0ALERTS"


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    return await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=f"sqlite:///{tmp_path}/agent.db")


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


def running(fabro: FakeFabro, kind: str = "running") -> dict[str, Any]:
    run = make_run(kind, title="Refactor the billing module")
    fabro.add(run)
    return run


async def agent_block(user: SlackUser, run_id: str) -> dict[str, Any]:
    _, _, url = await user.command(run_id)
    card = await user.reply(url)
    blocks: list[dict[str, Any]] = card["blocks"]
    [block] = [b for b in blocks if b["type"] == "actions" and b["block_id"].startswith("agent:")]
    return block


async def click(user: SlackUser, block: dict[str, Any], action_id: str, *, ts: str = "1700000001.000001") -> str:
    _, _, url = await user.click(
        {"action_id": action_id, "value": action_id, "action_ts": ts}, block_id=block["block_id"]
    )
    return url


def told(slack: FakeSlack, url: str) -> str:
    """Everything the person was told about a click: on its card's response_url, or ephemerally."""
    said = [r.get("text", "") + json.dumps(r.get("blocks", [])) for r in slack.responses_to(url)]
    said += [str(c.args.get("text", "")) for c in slack.calls_to("chat.postEphemeral")]
    return "\n".join(said)


def steers(fabro: FakeFabro, run_id: str) -> list[Any]:
    return [r.body for r in fabro.calls(f"/api/v1/runs/{run_id}/steer", method="POST")]


async def test_a_running_runs_card_has_steer_interrupt_and_pause(user: SlackUser, fabro: FakeFabro) -> None:
    block = await agent_block(user, running(fabro)["id"])
    assert [e["text"]["text"] for e in block["elements"]] == ["Steer…", "Interrupt", "Pause"]
    paused = await agent_block(user, running(fabro, "paused")["id"])
    assert [e["text"]["text"] for e in paused["elements"]] == ["Steer…", "Resume"]


@pytest.mark.parametrize("interrupt", [False, True])
async def test_the_steer_window_sends_the_words_once_with_or_without_interrupting(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, interrupt: bool
) -> None:
    run = running(fabro)
    url = await click(user, await agent_block(user, run["id"]), "steer:steer_text")
    await wait_for(lambda: slack.views)
    view = {**slack.views[-1], "id": "V0STEER01"}
    state: dict[str, dict[str, Any]] = {
        "steer_instruction": {"steer_instruction": {"type": "plain_text_input", "value": "Use the staging db"}}
    }
    if interrupt:
        state["steer_interrupt"] = {
            "steer_interrupt": {"type": "checkboxes", "selected_options": [{"value": "interrupt"}]}
        }
    for _ in range(2):  # the same window submitted twice: delivered once
        status, _ = await user.submit_view(view, {}, state=state)
        assert status == 200
    await wait_for(lambda: slack.responses_to(url))
    sent = {"text": "Use the staging db"} | ({"interrupt": True} if interrupt else {})
    assert steers(fabro, run["id"]) == [sent]
    assert "to the agent: Use the staging db" in json.dumps(slack.responses_to(url))


@pytest.mark.parametrize(
    ("action", "path", "said"),
    [("steer:interrupt", "interrupt", "Interrupted by"), ("steer:pause", "pause", "Pause requested by")],
)
async def test_interrupt_and_pause_are_sent_and_said(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, action: str, path: str, said: str
) -> None:
    run = running(fabro)
    url = await click(user, await agent_block(user, run["id"]), action)
    await wait_for(lambda: slack.responses_to(url))
    assert len(fabro.calls(f"/api/v1/runs/{run['id']}/{path}", method="POST")) == 1
    assert said in json.dumps(slack.responses_to(url))


async def test_a_second_pause_while_one_is_pending_is_explained(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    block = await agent_block(user, run["id"])
    await click(user, block, "steer:pause")
    url = await click(user, block, "steer:pause", ts="1700000002.000002")
    await wait_for(lambda: "already pending" in told(slack, url))


@pytest.mark.parametrize(
    ("trouble", "told_"),
    [
        ("agent_not_steerable", "does not take instructions"),
        ("no_active_steerable_session", "No agent is at work at this moment"),
        ("worker_control_unavailable", "may or may not have arrived"),
        ("run_not_interruptible", "cannot be interrupted right now"),
    ],
)
async def test_every_reason_fabro_gives_is_explained(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack, trouble: str, told_: str
) -> None:
    run = running(fabro)
    fabro.agent_trouble[run["id"]] = trouble
    action = "steer:interrupt" if trouble == "run_not_interruptible" else "steer:steer_text"
    block = await agent_block(user, run["id"])
    if action == "steer:interrupt":
        url = await click(user, block, action)
    else:
        url = await click(user, block, action)
        await wait_for(lambda: slack.views)
        state = {"steer_instruction": {"steer_instruction": {"type": "plain_text_input", "value": "try again"}}}
        await user.submit_view({**slack.views[-1], "id": "V0T"}, {}, state=state)
    await wait_for(lambda: told_ in told(slack, url))


async def test_steering_a_run_that_waits_for_an_answer_points_at_the_question(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    block = await agent_block(user, run["id"])
    fabro.ask(run["id"], {"id": "q", "text": "Which db?", "question_type": "freeform"})
    url = await click(user, block, "steer:steer_text")
    await wait_for(lambda: slack.views)
    state = {"steer_instruction": {"steer_instruction": {"type": "plain_text_input", "value": "staging"}}}
    await user.submit_view({**slack.views[-1], "id": "V0Q"}, {}, state=state)
    await wait_for(lambda: "answer it instead" in told(slack, url))


async def test_steer_in_an_alert_thread_is_sent_once_even_when_slack_resends_the_event(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    fabro.ask(run["id"], {"id": "q-1", "text": "Deploy?", "question_type": "yes_no"})
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    fabro.answer(run["id"], "q-1", {"kind": "yes"})  # answered in Fabro: the run works again
    body = user.mention_body("steer use the staging database", channel=CHANNEL, thread_ts=alert.ts)
    status, _ = await user.post(body, content_type="application/json")
    assert status == 200
    await wait_for(lambda: steers(fabro, run["id"]))
    status, _ = await user.post(
        body, {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}, content_type="application/json"
    )
    assert status == 200
    duplicate = b'fabro_bot_actions_total{action="steer",result="duplicate"} 1.0'
    await wait_for(lambda: duplicate in bot.metrics.render())  # the resent event was handled: as a duplicate
    await wait_for(lambda: [m for m in slack.messages if m.thread_ts == alert.ts])
    assert slack.calls_to("reactions.add")[0].args["name"] == "arrow_right_hook"
    assert steers(fabro, run["id"]) == [{"text": "use the staging database"}]
    replies = [m for m in slack.messages if m.thread_ts == alert.ts]
    assert len(replies) == 1 and "to the agent: use the staging database" in replies[0].text
    assert slack.calls_to("chat.postEphemeral") == []  # the resent event said nothing
    assert alert.edits == 0  # the alert is left as it is


async def test_a_late_yes_in_a_question_thread_never_reaches_the_agent(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    fabro.ask(run["id"], {"id": "q-1", "text": "Deploy?", "question_type": "yes_no"})
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    fabro.answer(run["id"], "q-1", {"kind": "no"})
    await user.mention("yes", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    assert steers(fabro, run["id"]) == [] and fabro.calls(method="POST") == []


async def test_words_over_the_limit_are_refused_with_the_limit(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    fabro.ask(run["id"], {"id": "q-1", "text": "Deploy?", "question_type": "yes_no"})
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    await user.mention("steer " + "x" * 9000, channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    assert "8,192" in slack.calls_to("chat.postEphemeral")[0].args["text"] and steers(fabro, run["id"]) == []


async def test_a_steer_whose_answer_was_lost_is_not_sent_again(
    user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """Fabro answered 503 after the text arrived: trying the same window again finds its run.steer event."""
    run = running(fabro)
    url = await click(user, await agent_block(user, run["id"]), "steer:steer_text")
    await wait_for(lambda: slack.views)
    view = {**slack.views[-1], "id": "V0LOST"}
    state = {"steer_instruction": {"steer_instruction": {"type": "plain_text_input", "value": "Roll back"}}}
    fabro.emit(run["id"], "run.steer", {"text": "Roll back"})  # it arrived…
    fabro.fail_next(503, path_prefix=f"/api/v1/runs/{run['id']}/steer")  # …but the answer said otherwise
    await user.submit_view(view, {}, state=state)
    await wait_for(lambda: "may or may not have arrived" in told(slack, url))
    await user.submit_view(view, {}, state=state)  # the person tries the same window again
    await wait_for(lambda: any("to the agent: Roll back" in json.dumps(r) for r in slack.responses_to(url)))
    assert len(steers(fabro, run["id"])) == 1  # only the first attempt reached Fabro


async def test_steer_text_reaches_the_agent_as_the_person_typed_it(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    fabro.ask(run["id"], {"id": "q-1", "text": "Deploy?", "question_type": "yes_no"})
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    fabro.answer(run["id"], "q-1", {"kind": "yes"})
    slack.names["U0GRACE"] = "grace"
    said = "steer run make test &amp;&amp; ask <@U0GRACE>, see <https://ci.example/1|the log> &gt; 3"
    await user.mention(said, channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: steers(fabro, run["id"]))
    typed = "run make test && ask @grace, see the log (https://ci.example/1) > 3"
    assert steers(fabro, run["id"]) == [{"text": typed}]
    await wait_for(lambda: [m for m in slack.messages if m.thread_ts == alert.ts])
    [echo] = [m for m in slack.messages if m.thread_ts == alert.ts]
    assert "&amp;amp;" not in echo.text and "make test &amp;&amp; ask @grace" in echo.text  # escaped once: reads &&


async def test_another_apps_message_never_steers_or_answers(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = running(fabro)
    fabro.ask(run["id"], {"id": "q-1", "text": "Deploy?", "question_type": "yes_no"})
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    for words in ("yes", "steer drop the table"):
        body = json.loads(user.mention_body(words, channel=CHANNEL, thread_ts=alert.ts))
        body["event"]["bot_id"] = "B0OTHER"
        status, _ = await user.post(json.dumps(body), content_type="application/json")
        assert status == 200
    await user.mention("steer marker", channel=CHANNEL, thread_ts=alert.ts)  # a person, after the bot
    await wait_for(lambda: slack.calls_to("chat.postEphemeral") or steers(fabro, run["id"]))
    assert fabro.calls(f"/api/v1/runs/{run['id']}/questions/q-1/answer", method="POST") == []
    assert [s["text"] for s in steers(fabro, run["id"])] in ([], ["marker"])


async def test_a_reply_in_a_digests_thread_asks_which_run_and_never_picks_one(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await start_bot(
        alert_channel=CHANNEL, alert_pace=0.0, alert_digest_threshold=2, database_url=f"sqlite:///{tmp_path}/d.db"
    )
    await bot.alerter.cycle()
    runs = [running(fabro) for _ in range(3)]
    for i, run in enumerate(runs):
        fabro.ask(run["id"], {"id": f"q-{i}", "text": f"Drop table {i}?", "question_type": "yes_no"})
    await bot.alerter.cycle()
    [digest] = slack.posts(CHANNEL)
    assert len({a.run_id for a in await bot.store.alerts_at(CHANNEL, digest.ts)}) == 3
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        for words in ("yes", "steer drop it all"):
            await user.mention(words, channel=CHANNEL, thread_ts=digest.ts)
        await wait_for(lambda: len(slack.calls_to("chat.postEphemeral")) == 2)
        chooser = slack.calls_to("chat.postEphemeral")[0].args["text"]
        assert "several runs, so nothing was sent" in chooser and "`@fabro-runs 2 yes`" in chooser
        assert fabro.calls(method="POST") == [] and digest.edits == 0
        second = next(r for r in runs if f"2. `{r['id']}`" in chooser)
        await user.mention("2 yes", channel=CHANNEL, thread_ts=digest.ts)
        await wait_for(lambda: fabro.calls(method="POST"))
    [answer] = fabro.calls(method="POST")
    qid = f"q-{runs.index(second)}"
    assert answer.path == f"/api/v1/runs/{second['id']}/questions/{qid}/answer" and answer.body == {"kind": "yes"}
    await wait_for(lambda: [m for m in slack.messages if m.thread_ts == digest.ts])
    assert digest.edits == 0  # the digest is never redrawn as one run's card
