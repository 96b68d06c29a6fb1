"""Ask Fabro in a run's thread: `@fabro-runs <question>` (or the card's Ask… window) is answered in one
reply that grows as Fabro writes, one session per run and thread, kept across a restart."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.asking.ask import session_mark
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import Call, FakeSlack

ADA = "U123ADA"
CHANNEL = "C0ALERTS"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ask.db"


@pytest.fixture
async def bot(start_bot: StartBot, db: str) -> Bot:
    started = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=db)
    await started.alerter.cycle()
    return started


@pytest.fixture
async def user(bot: Bot, slack: FakeSlack) -> AsyncIterator[SlackUser]:
    async with aiohttp.ClientSession() as session:
        yield SlackUser.of(bot, slack, session)


async def failed_alert(bot: Bot, fabro: FakeFabro, slack: FakeSlack, *, ask: bool = True) -> tuple[dict[str, Any], Any]:
    run = make_run("running", title="Add rate limiting")
    fabro.add(run)
    fabro.sandbox_ready(run["id"], ask=ask)
    fabro.fail(run["id"])
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    return run, alert


def replies(slack: FakeSlack, alert: Any) -> list[Any]:
    return [m for m in slack.messages if m.channel == alert.channel and m.thread_ts == alert.ts]


def said(message: Any) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


def finished(slack: FakeSlack, alert: Any, count: int = 1) -> bool:
    done = [m for m in replies(slack, alert) if "Fabro is writing" not in said(m) and "Waiting for" not in said(m)]
    return len(done) >= count and "Reading the run" not in str([said(m) for m in done])


async def test_a_question_in_a_failed_alerts_thread_is_answered_in_one_reply(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run, alert = await failed_alert(bot, fabro, slack)
    await user.mention("why did it fail?", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: finished(slack, alert))
    [answer] = replies(slack, alert)
    assert "The run failed because the tests failed." in said(answer)
    assert answer.metadata["event_payload"]["key"].startswith(f"reply:{run['id']}:ask.")
    assert [i for _, i in fabro.turn_inputs] == ["why did it fail?"]
    assert len(fabro.calls(f"/api/v1/runs/{run['id']}/sessions", method="POST")) == 1
    assert alert.edits == 0 and slack.violations == []


async def test_the_reply_grows_as_fabro_writes_at_most_one_edit_a_second(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.answer_deltas = [f"part {i}. " for i in range(12)]
    fabro.delta_pause = 0.25
    _, alert = await failed_alert(bot, fabro, slack)
    await user.mention("what happened?", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: finished(slack, alert), timeout=10)
    [answer] = replies(slack, alert)
    edits = [c for c in slack.calls_to("chat.update") if c.args.get("ts") == answer.ts]
    assert len(edits) >= 3  # it grew while Fabro wrote…
    gaps = [b.at - a.at for a, b in itertools.pairwise(edits)]
    assert min(gaps) >= 0.9  # …never faster than one edit a second
    assert "part 11." in said(answer) and "Fabro is writing" not in said(answer)


async def test_the_reply_waits_for_the_workspaces_edit_budget_and_still_ends_complete(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """Other writers spent all but one of this minute's edits: the answer takes the one left, then
    waits for the budget (never past it), and ends complete once the minute has passed."""
    ahead = [0.0]
    bot.budget.clock = lambda: time.monotonic() + ahead[0]
    fabro.answer_deltas = [f"part {i}. " for i in range(8)]
    fabro.delta_pause = 0.25
    _, alert = await failed_alert(bot, fabro, slack)
    for _ in range(bot.budget.per_minute - 1):
        bot.budget.spend()
    await user.mention("what happened?", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: fabro.turn_inputs and all(s["active_turn"] is None for s in fabro.sessions.values()))
    await wait_for(lambda: replies(slack, alert) and slack.calls_to("chat.update"))
    [answer] = replies(slack, alert)

    def edits() -> list[Call]:
        return [c for c in slack.calls_to("chat.update") if c.args.get("ts") == answer.ts]

    await asyncio.sleep(1.5)  # a second and more: time for edits the budget must hold back
    assert len(edits()) == 1 and "Fabro is writing" in said(answer)
    ahead[0] = 61.0  # the minute has passed
    await wait_for(lambda: finished(slack, alert), timeout=5)
    assert "part 7." in said(answer) and len(edits()) == 2


async def test_a_long_answer_continues_in_more_replies_and_nothing_is_cut(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 150 for i in range(12)]  # about 9,000 characters
    fabro.answer_deltas = ["\n\n".join(paragraphs)]
    _, alert = await failed_alert(bot, fabro, slack)
    await user.mention("explain everything", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: len(replies(slack, alert)) >= 4 and finished(slack, alert, 4), timeout=10)
    parts = replies(slack, alert)
    text = " ".join(m.blocks[0]["text"]["text"] for m in parts)
    assert all(f"Paragraph {i}:" in text for i in range(12))
    assert text.count("word") == 150 * 12
    assert "part 1 of 4" in said(parts[0]) and "part 4 of 4" in said(parts[-1])
    assert slack.violations == []


@pytest.mark.parametrize(
    ("code", "sentence"),
    [
        ("no_sandbox", "Fabro could not answer: this run has no sandbox to read."),
        ("sandbox_unavailable", "Fabro could not reach this run's sandbox just now; ask again in a minute."),
        ("llm_unconfigured", "Fabro could not answer: no language model is configured on the server."),
        ("model_unavailable", "Fabro could not answer: its language model is unavailable right now."),
        ("tool_denied", "Fabro stopped: it was not allowed to use a tool it needed to answer."),
        ("agent_error", "Fabro's agent failed while answering; ask again, perhaps in other words."),
        ("interrupted", "The answer was interrupted before it was finished."),
        ("a_code_from_a_newer_fabro", "Fabro could not answer (a_code_from_a_newer_fabro)."),
    ],
)
async def test_a_failed_turn_is_told_in_a_sentence_of_its_own(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack, code: str, sentence: str
) -> None:
    fabro.turn_failure = code
    _, alert = await failed_alert(bot, fabro, slack)
    await user.mention("why?", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: finished(slack, alert))
    [reply] = replies(slack, alert)
    assert sentence in said(reply) and "writing" not in said(reply)
    assert slack.calls_to("chat.postEphemeral") == [] and slack.violations == []
    assert await bot.asker.recover() == 0  # settled: nothing left for a later cycle


@pytest.mark.parametrize(
    ("status", "detail", "code", "path", "sentence"),
    [
        (404, "Run not found.", None, "/api/v1/runs/{run}/sessions", "Fabro could not be asked (Run not found., "),
        (400, "Unknown model.", None, "/api/v1/runs/{run}/sessions", "Fabro could not be asked (Unknown model., "),
        (409, "Run is archived.", None, "/api/v1/sessions/", "Fabro could not be asked (Run is archived., "),
        (503, "Sandbox unreachable.", None, "/api/v1/sessions/", "The connection to Fabro broke while it was"),
    ],
)
async def test_a_refusal_from_fabro_while_asking_is_said_in_the_thread(
    bot: Bot,
    user: SlackUser,
    fabro: FakeFabro,
    slack: FakeSlack,
    status: int,
    detail: str,
    code: str | None,
    path: str,
    sentence: str,
) -> None:
    run, alert = await failed_alert(bot, fabro, slack)
    if path.startswith("/api/v1/sessions/"):  # the thread has its session: the turn is refused
        await user.mention("first", channel=CHANNEL, thread_ts=alert.ts)
        await wait_for(lambda: finished(slack, alert))
    asked = len(fabro.turn_inputs)
    fabro.fail_next(status, path_prefix=path.format(run=run["id"]), detail=detail, code=code)
    await user.mention("why?", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: finished(slack, alert, 1 + (asked > 0)))
    reply = replies(slack, alert)[-1]
    assert sentence in said(reply) and "writing" not in said(reply)
    assert len(fabro.turn_inputs) == asked  # nothing was asked twice, nothing half-asked
    assert await bot.asker.recover() == 0


async def test_an_answer_whose_session_fabro_forgot_during_a_restart_says_it_was_lost(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run, alert = await failed_alert(bot, fabro, slack)
    fabro.turn_gate = asyncio.Event()
    asking = asyncio.create_task(bot.asker.ask(ADA, run["id"], CHANNEL, alert.ts, "why?", "0a1b2c3e"))
    await wait_for(lambda: fabro.turn_inputs and replies(slack, alert))
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    fabro.turn_gate.set()
    await wait_for(lambda: all(s["active_turn"] is None for s in fabro.sessions.values()))
    fabro.sessions.clear()  # GET /sessions/{sid} is a 404 now
    later = bot.clock() + timedelta(minutes=3)
    bot.asker.clock = lambda: later
    assert await bot.asker.recover() == 1
    [reply] = replies(slack, alert)
    assert "The answer was lost when the bot restarted" in said(reply) and "writing" not in said(reply)
    assert await bot.asker.recover() == 0


async def test_a_run_fabro_cannot_answer_about_says_why_and_asks_nothing(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run, alert = await failed_alert(bot, fabro, slack, ask=False)
    assert "steer:ask" not in json.dumps(alert.blocks)  # the card hides Ask…
    await user.mention("why?", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: replies(slack, alert))
    assert "no language model is configured" in said(replies(slack, alert)[0])
    assert fabro.calls(f"/api/v1/runs/{run['id']}/sessions", method="POST") == [] and fabro.turn_inputs == []


async def test_a_second_question_waits_for_the_first_and_they_are_never_interleaved(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.turn_gate = asyncio.Event()
    _, alert = await failed_alert(bot, fabro, slack)
    await user.mention("first question", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: fabro.turn_inputs)
    await user.mention("second question", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: len(replies(slack, alert)) == 2)
    assert "Waiting for Fabro to finish the question before this one" in said(replies(slack, alert)[1])
    assert [i for _, i in fabro.turn_inputs] == ["first question"]  # the second is not sent meanwhile
    fabro.turn_gate.set()
    await wait_for(lambda: finished(slack, alert, 2), timeout=10)
    assert [i for _, i in fabro.turn_inputs] == ["first question", "second question"]
    assert len({s for s, _ in fabro.turn_inputs}) == 1  # one session for the thread


async def test_the_threads_session_is_kept_across_a_restart(
    start_bot: StartBot, db: str, bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run, alert = await failed_alert(bot, fabro, slack)
    await user.mention("first", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: finished(slack, alert))
    await bot.stop()
    again = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=db)
    async with aiohttp.ClientSession() as session:
        await SlackUser.of(again, slack, session).mention("and then?", channel=CHANNEL, thread_ts=alert.ts)
        await wait_for(lambda: finished(slack, alert, 2))
    assert len(fabro.calls(f"/api/v1/runs/{run['id']}/sessions", method="POST")) == 1
    assert len({s for s, _ in fabro.turn_inputs}) == 1 and len(fabro.turn_inputs) == 2


async def test_a_session_fabro_forgot_is_made_again(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run, alert = await failed_alert(bot, fabro, slack)
    await user.mention("first", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: finished(slack, alert))
    fabro.sessions.clear()  # Fabro lost it
    await user.mention("second", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: finished(slack, alert, 2))
    assert len(fabro.calls(f"/api/v1/runs/{run['id']}/sessions", method="POST")) == 2
    assert [i for _, i in fabro.turn_inputs] == ["first", "second"]


async def test_asking_follows_allow_answer(start_bot: StartBot, db: str, fabro: FakeFabro, slack: FakeSlack) -> None:
    bot = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=db, allow_answer="U999OTHER")
    await bot.alerter.cycle()
    _, alert = await failed_alert(bot, fabro, slack)
    async with aiohttp.ClientSession() as session:
        await SlackUser.of(bot, slack, session).mention("why?", channel=CHANNEL, thread_ts=alert.ts)
        await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    said = slack.calls_to("chat.postEphemeral")[0].args["text"]
    assert "You may not ask Fabro about runs" in said and "ALLOW_ANSWER allows only <@U999OTHER>" in said
    assert fabro.turn_inputs == [] and replies(slack, alert) == []
    assert fabro.calls(method="POST") == []


async def test_the_ask_window_is_refused_before_it_opens_to_whoever_allow_answer_leaves_out(
    start_bot: StartBot, db: str, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=db, allow_answer="owner")
    await bot.alerter.cycle()
    _, alert = await failed_alert(bot, fabro, slack)
    [block] = [b for b in alert.blocks if b.get("block_id", "").startswith("inspect:")]
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        click = {"action_id": "steer:ask", "value": "ask"}
        where = {"channel": CHANNEL, "message_ts": alert.ts, "ephemeral": False}
        _, _, url = await user.click(click, block_id=block["block_id"], **where)
        said = await user.reply(url)
    assert "ALLOW_ANSWER allows only the run's owner" in said["text"]
    assert slack.views == [] and fabro.turn_inputs == []


async def test_the_legacy_action_allowlist_still_decides_who_asks_when_allow_answer_is_unset(
    start_bot: StartBot, db: str, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=db, action_allowlist="U999OTHER")
    await bot.alerter.cycle()
    _, alert = await failed_alert(bot, fabro, slack)
    async with aiohttp.ClientSession() as session:
        await SlackUser.of(bot, slack, session).mention("why?", channel=CHANNEL, thread_ts=alert.ts)
        await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    assert "ACTION_ALLOWLIST allows only <@U999OTHER>" in slack.calls_to("chat.postEphemeral")[0].args["text"]
    assert fabro.turn_inputs == [] and replies(slack, alert) == []


async def test_steer_words_still_steer_in_the_same_thread(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Refactor")
    fabro.add(run)
    fabro.ask(run["id"], {"id": "q-1", "text": "Deploy?", "question_type": "yes_no"})
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    fabro.answer(run["id"], "q-1", {"kind": "yes"})
    await user.mention("steer use the staging database", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: fabro.calls(f"/api/v1/runs/{run['id']}/steer", method="POST"))
    assert fabro.turn_inputs == []


async def test_ask_words_ask_fabro_even_while_a_question_waits_in_the_thread(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Refactor")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    fabro.ask(run["id"], {"id": "q-1", "text": "Deploy?", "question_type": "freeform"})
    await bot.alerter.cycle()
    [alert] = slack.posts(CHANNEL)
    await user.mention("ask: why does it want to deploy?", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: finished(slack, alert))
    assert [i for _, i in fabro.turn_inputs] == ["why does it want to deploy?"]
    assert fabro.calls(f"/api/v1/runs/{run['id']}/questions/q-1/answer", method="POST") == []
    assert "The run failed because" in said(replies(slack, alert)[0])


async def test_ask_words_with_a_runs_number_in_a_digests_thread_ask_about_that_run(
    start_bot: StartBot, db: str, fabro: FakeFabro, slack: FakeSlack
) -> None:
    bot = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, alert_digest_threshold=1, database_url=db)
    await bot.alerter.cycle()
    for title in ("First", "Second"):
        run = make_run("running", title=title)
        fabro.add(run)
        fabro.sandbox_ready(run["id"])
        fabro.fail(run["id"])
    await bot.alerter.cycle()
    [digest] = slack.posts(CHANNEL)
    numbered = list(dict.fromkeys(a.run_id for a in await bot.store.alerts_at(CHANNEL, digest.ts)))
    async with aiohttp.ClientSession() as session:
        user = SlackUser.of(bot, slack, session)
        await user.mention("why did they fail?", channel=CHANNEL, thread_ts=digest.ts)
        await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
        assert "`@fabro-runs 2 ask <question>`" in slack.calls_to("chat.postEphemeral")[0].args["text"]
        await user.mention("2 ask why did it fail?", channel=CHANNEL, thread_ts=digest.ts)
        await wait_for(lambda: finished(slack, digest))
    [(session_id, words)] = fabro.turn_inputs
    assert words == "why did it fail?" and fabro.sessions[session_id]["run_id"] == numbered[1]
    assert "The run failed because" in said(replies(slack, digest)[0]) and digest.edits == 0


async def test_the_ask_window_on_a_card_answers_in_its_thread(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    _, alert = await failed_alert(bot, fabro, slack)
    [block] = [b for b in alert.blocks if b.get("block_id", "").startswith("inspect:")]
    await user.click(
        {"action_id": "steer:ask", "value": "ask"},
        block_id=block["block_id"],
        channel=CHANNEL,
        message_ts=alert.ts,
        ephemeral=False,
    )
    await wait_for(lambda: slack.views)
    await user.submit_view(slack.views[-1], {"ask_question": "which test failed?"})
    await wait_for(lambda: finished(slack, alert))
    assert [i for _, i in fabro.turn_inputs] == ["which test failed?"]
    assert "The run failed because" in said(replies(slack, alert)[0])


async def test_the_ask_window_on_a_live_card_answers_in_the_live_cards_thread(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Refactor")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    follow = await bot.follower.follow(run["id"], channel=CHANNEL, user_id=ADA)
    live = next(m for m in slack.messages if m.ts == follow.ts)
    [block] = [b for b in live.blocks if b.get("block_id", "").startswith("inspect:")]
    assert any(e["action_id"] == "steer:ask" for e in block["elements"])
    click = {"action_id": "steer:ask", "value": "ask"}
    await user.click(click, block_id=block["block_id"], channel=CHANNEL, message_ts=live.ts, ephemeral=False)
    await wait_for(lambda: slack.views)
    await user.submit_view(slack.views[-1], {"ask_question": "what is it doing now?"})
    await wait_for(lambda: finished(slack, live))
    [answer] = replies(slack, live)
    assert "The run failed because" in said(answer) and answer.thread_ts == live.ts
    assert [i for _, i in fabro.turn_inputs] == ["what is it doing now?"]


async def test_a_start_announcements_thread_is_the_runs_thread(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add_automation("nightly", "Nightly audit")
    _, _, url = await user.command("start nightly")
    card = await user.reply(url)
    go = next(
        e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "start:go"
    )
    await user.click({"action_id": "start:go", "value": go["value"]}, block_id="start", channel="C123OPS")
    await wait_for(lambda: slack.posts("C123OPS"))
    [announcement] = slack.posts("C123OPS")
    assert announcement.metadata is not None
    run_id = announcement.metadata["event_payload"]["run_id"]
    fabro.runs[run_id]["lifecycle"]["status"] = {"kind": "running"}
    fabro.sandbox_ready(run_id)
    await user.mention("what is it doing?", channel="C123OPS", thread_ts=announcement.ts)
    await wait_for(lambda: finished(slack, announcement))
    assert [i for _, i in fabro.turn_inputs] == ["what is it doing?"]


async def test_an_answer_cut_off_by_a_stop_is_finished_from_fabros_transcript_after_it(
    bot: Bot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """The process went away mid-answer: the reply stays 'being written' until the next leader cycle
    reads the answer Fabro kept in the session, and finishes it, once."""
    run, alert = await failed_alert(bot, fabro, slack)
    fabro.turn_gate = asyncio.Event()
    asking = asyncio.create_task(bot.asker.ask(ADA, run["id"], CHANNEL, alert.ts, "why?", "0a1b2c3d"))
    await wait_for(lambda: fabro.turn_inputs and replies(slack, alert))
    asking.cancel()  # the process is gone…
    with pytest.raises(asyncio.CancelledError):
        await asking
    fabro.turn_gate.set()  # …while Fabro finishes the answer and keeps it
    await wait_for(lambda: all(s["active_turn"] is None for s in fabro.sessions.values()))
    [reply] = replies(slack, alert)
    assert "Fabro is writing" in said(reply) or "Reading the run" in said(reply)
    assert await bot.asker.recover() == 0  # too soon: it may still be being answered elsewhere
    later = bot.clock() + timedelta(minutes=3)
    bot.asker.clock = lambda: later
    await bot.scheduled_cycle()
    assert "The run failed because the tests failed." in said(reply) and "writing" not in said(reply)
    assert await bot.asker.recover() == 0  # settled: never finished twice
    assert len(replies(slack, alert)) == 1 and len(fabro.turn_inputs) == 1


async def test_words_in_a_live_cards_thread_ask_fabro_when_no_question_waits(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("running", title="Refactor")
    fabro.add(run)
    fabro.sandbox_ready(run["id"])
    follow = await bot.follower.follow(run["id"], channel=CHANNEL, user_id=ADA)
    live = next(m for m in slack.messages if m.ts == follow.ts)
    await user.mention("what is it doing now?", channel=CHANNEL, thread_ts=live.ts)
    await wait_for(lambda: finished(slack, live))
    assert [i for _, i in fabro.turn_inputs] == ["what is it doing now?"]
    assert fabro.calls(f"/api/v1/runs/{run['id']}/steer", method="POST") == []


async def test_a_session_busy_elsewhere_for_too_long_is_refused_clearly_and_nothing_is_interleaved(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """Another replica is answering in the same thread and does not finish: Fabro refuses a second
    turn (409) each time it is looked at, and the question gives up after `busy_wait`."""
    bot.asker.busy_wait, bot.asker.busy_poll = 1.0, 0.2
    _, alert = await failed_alert(bot, fabro, slack)
    await user.mention("first", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: finished(slack, alert))
    [session] = fabro.sessions.values()
    session["active_turn"] = {"id": "01TURNELSEWHERE", "started_at": "2026-01-01T00:00:00.000Z", "input": "elsewhere"}
    await user.mention("second", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: len(replies(slack, alert)) == 2)
    await wait_for(lambda: finished(slack, alert, 2), timeout=10)
    assert "already answering another question in this thread" in said(replies(slack, alert)[1])
    assert [i for _, i in fabro.turn_inputs] == ["first"]
    assert len(fabro.calls(f"/api/v1/sessions/{session['id']}", method="GET")) >= 2  # it looked, and waited


async def test_a_question_fabro_could_not_be_asked_says_so_in_the_thread_and_to_the_asker(
    bot: Bot, user: SlackUser, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run, alert = await failed_alert(bot, fabro, slack)
    fabro.fail_next(503, path_prefix=f"/api/v1/runs/{run['id']}/sessions")
    await user.mention("why?", channel=CHANNEL, thread_ts=alert.ts)
    await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    await wait_for(lambda: "Fabro could not be asked" in said(replies(slack, alert)[0]))
    assert "request id req_" in said(replies(slack, alert)[0]) and fabro.turn_inputs == []
    assert await bot.asker.recover() == 0  # settled as failed: nothing is left to finish


# -- two replicas on one PostgreSQL database -------------------------------------------------------


async def replicas(
    start_bot: StartBot, postgres_url: str, fabro: FakeFabro, slack: FakeSlack
) -> tuple[Bot, Bot, dict[str, Any], Any]:
    one = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=postgres_url)
    two = await start_bot(alert_channel=CHANNEL, alert_pace=0.0, database_url=postgres_url)
    await one.alerter.cycle()
    run, alert = await failed_alert(one, fabro, slack)
    return one, two, run, alert


async def test_a_question_on_another_replica_while_fabro_answers_waits_its_turn_never_interleaved(
    start_bot: StartBot, postgres_url: str, fabro: FakeFabro, slack: FakeSlack
) -> None:
    """Slack sends each mention to one replica: the second question, on the other one, finds the
    thread's session busy (Fabro's 409), says it waits, and is asked once the first is answered."""
    one, two, run, alert = await replicas(start_bot, postgres_url, fabro, slack)
    two.asker.busy_poll = 0.2
    fabro.turn_gate = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        await SlackUser.of(one, slack, session).mention("first question", channel=CHANNEL, thread_ts=alert.ts)
        await wait_for(lambda: fabro.turn_inputs)
        await SlackUser.of(two, slack, session).mention("second question", channel=CHANNEL, thread_ts=alert.ts)
        await wait_for(
            lambda: len(replies(slack, alert)) == 2 and "Waiting for Fabro" in said(replies(slack, alert)[1])
        )
    await wait_for(lambda: fabro.calls(method="GET", path=f"/api/v1/sessions/{fabro.turn_inputs[0][0]}"))
    assert [i for _, i in fabro.turn_inputs] == ["first question"]  # not sent while the first is answered
    fabro.turn_gate.set()
    await wait_for(lambda: finished(slack, alert, 2), timeout=10)
    first, second = replies(slack, alert)
    assert "The run failed because the tests failed." in said(first) and "The run failed because" in said(second)
    assert [i for _, i in fabro.turn_inputs] == ["first question", "second question"]
    assert len({s for s, _ in fabro.turn_inputs}) == 1
    assert len(fabro.calls(f"/api/v1/runs/{run['id']}/sessions", method="POST")) == 1


async def test_two_replicas_asking_at_once_in_a_new_thread_keep_one_session(
    start_bot: StartBot, postgres_url: str, fabro: FakeFabro, slack: FakeSlack
) -> None:
    one, two, run, alert = await replicas(start_bot, postgres_url, fabro, slack)
    one.asker.busy_poll = two.asker.busy_poll = 0.2
    fabro.turn_gate = asyncio.Event()
    asked = [
        one.asker.ask(ADA, run["id"], CHANNEL, alert.ts, "from one", "1a1a1a1a"),
        two.asker.ask(ADA, run["id"], CHANNEL, alert.ts, "from two", "2b2b2b2b"),
    ]
    both = asyncio.gather(*asked)
    await wait_for(lambda: len(replies(slack, alert)) == 2 and fabro.turn_inputs)
    await wait_for(lambda: any("Waiting for Fabro" in said(m) for m in replies(slack, alert)))
    assert len(fabro.turn_inputs) == 1  # the other waits
    fabro.turn_gate.set()
    await both
    assert all("The run failed because" in said(m) for m in replies(slack, alert))  # both answered, in turn
    [session_id] = {s for s, _ in fabro.turn_inputs}
    assert sorted(i for _, i in fabro.turn_inputs) == ["from one", "from two"]
    assert await one.store.get_mark(session_mark(run["id"], CHANNEL, alert.ts)) == session_id
    await two.asker.ask(ADA, run["id"], CHANNEL, alert.ts, "and then?", "3c3c3c3c")
    assert {s for s, _ in fabro.turn_inputs} == {session_id}  # later questions go on in the one kept
