"""Acting on runs from Slack, end to end: signed block_actions and view_submission payloads
to /slack/events, the fake Fabro recording what it was sent, the fake Slack recording
chat.update, views.open and response_url posts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.core.records import AlertState
from tests.conftest import SlackUser, StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack, Message

CHANNEL = "C0ALERTS"
ADA, BOB = "U123ADA", "U456BOB"


def question(qtype: str, options: int = 0, *, allow_freeform: bool = False, qid: str = "q-1") -> dict[str, Any]:
    return {
        "id": qid,
        "text": f"A {qtype} question?",
        "stage": "gate",
        "question_type": qtype,
        "options": [{"key": f"k{i}", "label": f"Option {i}", "description": f"Means {i}"} for i in range(options)],
        "allow_freeform": allow_freeform,
        "context_display": "diff --git a/x b/x",
    }


@dataclass
class Desk:
    bot: Bot
    user: SlackUser
    fabro: FakeFabro
    slack: FakeSlack

    async def alert(self, run: dict[str, Any]) -> Message:
        """Let the alert cycle post `run`'s alert and return the message."""
        before = len(self.slack.posts(CHANNEL))
        await self.bot.alerter.cycle()
        posts = self.slack.posts(CHANNEL)
        assert len(posts) == before + 1, [p.text for p in posts]
        return posts[-1]

    async def click(self, post: Message, action_prefix: str, *, user: str = ADA, index: int = 0, **extra: Any) -> str:
        """Click the `index`-th control whose action id starts with `action_prefix` on `post`."""
        found = [
            (b["block_id"], e)
            for b in post.blocks
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"].startswith(action_prefix)
        ]
        block_id, element = found[index]
        action = {"action_id": element["action_id"], "value": element.get("value"), "type": element["type"], **extra}
        status, _, response_url = await self.user.click(
            action,
            block_id=block_id,
            channel=post.channel,
            message_ts=post.ts,
            ephemeral=False,
            user=user,
            state=extra.pop("state", None) if "state" in extra else None,
        )
        assert status == 200
        return response_url

    def posts_to(self, suffix: str) -> list[Any]:
        return [r.body for r in self.fabro.calls(method="POST") if r.path.endswith(suffix)]


@pytest.fixture
async def desk(start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Desk]:
    bot = await start_bot(
        schedule_alerts=False, alert_pace=0.0, alert_channel=CHANNEL, database_url=f"sqlite:///{tmp_path}/bot.db"
    )
    await bot.alerter.cycle()
    async with aiohttp.ClientSession() as session:
        yield Desk(bot, SlackUser.of(bot, slack, session), fabro, slack)


def asking(fabro: FakeFabro, q: dict[str, Any], **run: Any) -> dict[str, Any]:
    r = make_run("running", **run)
    fabro.add(r)
    fabro.ask(r["id"], q)
    return r


def controls(post: Message) -> list[str]:
    return [e["action_id"] for b in post.blocks if b["type"] == "actions" for e in b["elements"]]


@pytest.mark.parametrize(
    ("qtype", "label", "sent"),
    [
        ("yes_no", "steer:answer:0", {"kind": "yes"}),
        ("yes_no", "steer:answer:1", {"kind": "no"}),
        ("confirmation", "steer:answer:0", {"kind": "yes"}),
        ("confirmation", "steer:answer:1", {"kind": "no"}),
    ],
)
async def test_yes_no_and_confirmation_buttons_answer(desk: Desk, qtype: str, label: str, sent: dict[str, Any]) -> None:
    run = asking(desk.fabro, question(qtype))
    post = await desk.alert(run)
    button = next(e for b in post.blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == label)
    assert button["text"]["text"] in (("Yes", "No") if qtype == "yes_no" else ("Confirm", "Decline"))
    await desk.click(post, label)
    await wait_for(lambda: post.edits == 1)
    assert desk.posts_to("/questions/q-1/answer") == [sent]
    said = "Yes" if sent["kind"] == "yes" else "No"
    assert f"Answered *A {qtype} question?* by <@{ADA}>: {said}" in str(post.blocks)
    assert not [a for a in controls(post) if a.startswith("steer:")]  # spent controls are gone
    [action] = await desk.bot.store.actions_for_run(run["id"])
    assert (action.user_id, action.state) == (ADA, "done")
    [alert] = await desk.bot.store.alerts_for_run(run["id"])
    assert alert.state is AlertState.RESOLVED


async def test_a_multiple_choice_question_has_a_button_per_option(desk: Desk) -> None:
    run = asking(desk.fabro, question("multiple_choice", 3))
    post = await desk.alert(run)
    assert [a for a in controls(post) if a.startswith("steer:answer")] == [
        "steer:answer:0",
        "steer:answer:1",
        "steer:answer:2",
    ]
    assert "Means 1" in str(post.blocks)
    await desk.click(post, "steer:answer", index=1)
    await wait_for(lambda: post.edits == 1)
    assert desk.posts_to("/answer") == [{"kind": "selected", "option_key": "k1"}]
    assert "by <@U123ADA>: Option 1" in str(post.blocks)


async def test_more_than_five_options_become_a_select_menu(desk: Desk) -> None:
    run = asking(desk.fabro, question("multiple_choice", 8))
    post = await desk.alert(run)
    assert "steer:choose" in controls(post) and "steer:answer:0" not in controls(post)
    await desk.click(
        post, "steer:choose", selected_option={"value": "k6", "text": {"type": "plain_text", "text": "Option 6"}}
    )
    await wait_for(lambda: post.edits == 1)
    assert desk.posts_to("/answer") == [{"kind": "selected", "option_key": "k6"}]


@pytest.mark.parametrize("options", [4, 12])
async def test_multi_select_submits_the_ticked_options_and_refuses_none(desk: Desk, options: int) -> None:
    run = asking(desk.fabro, question("multi_select", options))
    post = await desk.alert(run)
    kind = "checkboxes" if options <= 10 else "multi_static_select"
    [block] = [b for b in post.blocks if b["type"] == "actions" and b["block_id"].startswith("answer:")]
    assert block["elements"][0]["type"] == kind
    ticked: dict[str, dict[str, Any]] = {"steer:pick": {"type": kind, "selected_options": []}}
    url = await desk.click(post, "steer:submit", state={block["block_id"]: ticked})
    reply = await desk.user.reply(url)
    assert "Tick at least one option" in reply["text"] and desk.posts_to("/answer") == []
    ticked["steer:pick"]["selected_options"] = [{"value": "k0"}, {"value": "k3"}]
    await desk.click(post, "steer:submit", state={block["block_id"]: ticked})
    await wait_for(lambda: post.edits == 1)
    assert desk.posts_to("/answer") == [{"kind": "multi_selected", "option_keys": ["k0", "k3"]}]


async def test_a_freeform_answer_goes_through_a_modal_showing_the_question(desk: Desk) -> None:
    run = asking(desk.fabro, question("freeform"))
    post = await desk.alert(run)
    await desk.click(post, "steer:text")
    await wait_for(lambda: desk.slack.views)
    [view] = desk.slack.views
    assert "A freeform question?" in str(view["blocks"]) and "diff --git" in str(view["blocks"])
    status, body = await desk.user.submit_view(view, {"answer_text": "   "})
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    assert desk.posts_to("/answer") == []
    status, body = await desk.user.submit_view(view, {"answer_text": "Use the staging database"})
    assert status == 200
    await wait_for(lambda: post.edits == 1)
    assert desk.posts_to("/answer") == [{"kind": "text", "text": "Use the staging database"}]
    assert ": Use the staging database" in str(post.blocks)


async def test_allow_freeform_adds_a_written_answer_beside_the_options(desk: Desk) -> None:
    run = asking(desk.fabro, question("multiple_choice", 2, allow_freeform=True))
    post = await desk.alert(run)
    assert {"steer:answer:0", "steer:answer:1", "steer:text"} <= set(controls(post))


async def test_replying_in_the_alert_thread_with_a_mention_answers(desk: Desk) -> None:
    run = asking(desk.fabro, question("yes_no"))
    post = await desk.alert(run)
    status, _ = await desk.user.mention("yes", channel=CHANNEL, thread_ts=post.ts)
    assert status == 200
    await wait_for(lambda: post.edits == 1)
    assert desk.posts_to("/answer") == [{"kind": "yes"}]


async def test_approve_and_deny_with_and_without_a_reason(desk: Desk) -> None:
    runs = [make_run("submitted", title=f"Child {i}") for i in range(3)]
    desk.fabro.add(*runs)
    posts = []
    for r in runs:
        desk.fabro.request_approval(r["id"])
        posts.append(await desk.alert(r))
    await desk.click(posts[0], "steer:approve")
    await wait_for(lambda: posts[0].edits == 1)
    assert f"Approved by <@{ADA}>" in str(posts[0].blocks)
    assert desk.fabro.runs[runs[0]["id"]]["lifecycle"]["status"]["kind"] == "runnable"

    for post, reason in ((posts[1], "Not during the freeze"), (posts[2], "")):
        await desk.click(post, "steer:deny")
        opened = 1 if reason else 2

        def window_opened(windows: int = opened) -> bool:
            return len(desk.slack.views) == windows

        def edited(card: Message = post) -> bool:
            return card.edits == 1

        await wait_for(window_opened)
        await desk.user.submit_view(desk.slack.views[-1], {"deny_reason": reason})
        await wait_for(edited)
    assert desk.posts_to(f"{runs[1]['id']}/deny") == [{"reason": "Not during the freeze"}]
    assert desk.posts_to(f"{runs[2]['id']}/deny") == [{}]
    assert f"Denied by <@{ADA}>: Not during the freeze" in str(posts[1].blocks)


async def test_retry_links_the_new_run_and_a_double_click_retries_once(desk: Desk) -> None:
    run = make_run("running", title="Flaky")
    desk.fabro.add(run)
    desk.fabro.fail(run["id"])
    post = await desk.alert(run)
    first, second = await asyncio.gather(desk.click(post, "steer:retry"), desk.click(post, "steer:retry", user=BOB))
    await wait_for(lambda: post.edits >= 1)
    assert len(desk.posts_to("/retry")) == 1
    [new_id] = [r for r in desk.fabro.runs if desk.fabro.runs[r].get("retried_from") == run["id"]]
    assert "Retried by <@" in str(post.blocks) and new_id in str(post.blocks)
    await wait_for(lambda: any(desk.slack.responses_to(u) for u in (first, second)))
    told = " ".join(r["text"] for u in (first, second) for r in desk.slack.responses_to(u))
    assert "already retrying" in told or "Already done" in told
    # The next alert cycle leaves the card alone: it was settled by the action.
    await desk.bot.alerter.cycle()
    assert post.edits == 1


async def test_retry_on_a_run_already_retried_in_fabro_says_where_and_sends_nothing(desk: Desk) -> None:
    run = make_run("running", title="Flaky")
    desk.fabro.add(run)
    desk.fabro.fail(run["id"])
    post = await desk.alert(run)
    # Retried in Fabro's web UI, after it failed.
    successor = desk.fabro.retry(run["id"], make_run("runnable", title="Flaky", created=datetime.now(UTC)))
    url = await desk.click(post, "steer:retry")
    told = (await desk.user.reply(url))["text"]
    assert "already retried" in told and successor["id"] in told
    assert desk.posts_to("/retry") == []
    await wait_for(lambda: post.edits == 1)  # the card now links to the retry instead of offering Retry
    assert successor["id"] in str(post.blocks) and "steer:retry" not in controls(post)


async def test_a_runs_card_offers_retry_only_until_fabro_shows_a_retry(desk: Desk) -> None:
    run = make_run("running", title="Flaky")
    desk.fabro.add(run)
    desk.fabro.fail(run["id"])
    card, _ = await _detail_card(desk, run["id"])
    assert any(b["block_id"].startswith("retry:") for b in card["blocks"] if b["type"] == "actions")
    successor = desk.fabro.retry(run["id"], make_run("runnable", title="Flaky", created=datetime.now(UTC)))
    card, _ = await _detail_card(desk, run["id"])
    assert not any(b["block_id"].startswith("retry:") for b in card["blocks"] if b["type"] == "actions")
    assert f"Retried as run <https://fabro.example.com/runs/{successor['id']}|{successor['id']}>" in str(card)


async def test_a_retry_whose_answer_was_lost_is_found_in_fabro_not_made_again(desk: Desk) -> None:
    """Fabro answered after the bot gave up waiting: the next click finds the retry by the intent in its
    provenance, records it as the first person's, and sends nothing."""
    run = make_run("running", title="Flaky")
    desk.fabro.add(run)
    desk.fabro.fail(run["id"])
    post = await desk.alert(run)
    desk.fabro.hang_next(3.0, path_prefix=f"/api/v1/runs/{run['id']}/retry")  # longer than FABRO_TIMEOUT_SECONDS
    url = await desk.click(post, "steer:retry")
    assert "request id" in (await desk.user.reply(url, timeout=10))["text"]
    await wait_for(lambda: any(r.get("retried_from") == run["id"] for r in desk.fabro.runs.values()), timeout=10)
    [new_id] = [r for r in desk.fabro.runs if desk.fabro.runs[r].get("retried_from") == run["id"]]
    await desk.click(post, "steer:retry", user=BOB)
    await wait_for(lambda: f"Retried by <@{ADA}>" in str(post.blocks))
    assert new_id in str(post.blocks) and len(desk.posts_to("/retry")) == 1
    [action] = await desk.bot.store.actions_for_run(run["id"])
    assert action.state.value == "done" and action.user_id == ADA
    indexed = await desk.bot.store.indexed_run(new_id)
    assert indexed is not None and indexed.owner == ADA


async def _detail_card(desk: Desk, run_id: str) -> tuple[dict[str, Any], str]:
    _, _, url = await desk.user.command(run_id)
    return await desk.user.reply(url), url


@pytest.mark.parametrize("converges", [False, True])
async def test_cancel_from_the_detail_card_asks_first_and_reports_200_and_202(desk: Desk, converges: bool) -> None:
    desk.fabro.cancel_converges = converges
    run = make_run("running", title="Long job")
    desk.fabro.add(run)
    card, _ = await _detail_card(desk, run["id"])
    [cancel] = [
        e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "steer:cancel"
    ]
    assert cancel["confirm"]["confirm"]["text"] == "Cancel run"
    _status, _, url = await desk.user.click(
        {"action_id": "steer:cancel", "value": "cancel"}, block_id=f"cancel:{run['id']}", ephemeral=True
    )
    reply = await desk.user.reply(url)
    assert reply["replace_original"] is True
    expected = (
        "Cancellation requested by <@U123ADA>; Fabro is stopping the run" if converges else "Cancelled by <@U123ADA>"
    )
    assert expected in str(reply["blocks"])
    assert len(desk.posts_to("/cancel")) == 1


async def test_someone_outside_the_allowlist_is_told_and_nothing_reaches_fabro(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    slack.usergroups["S0ONCALL"] = [BOB]
    bot = await start_bot(
        schedule_alerts=False,
        alert_pace=0.0,
        alert_channel=CHANNEL,
        database_url=f"sqlite:///{tmp_path}/b.db",
        action_allowlist="U999BOSS, S0ONCALL",
    )
    await bot.alerter.cycle()
    async with aiohttp.ClientSession() as session:
        d = Desk(bot, SlackUser.of(bot, slack, session), fabro, slack)
        run = asking(fabro, question("yes_no"))
        post = await d.alert(run)
        url = await d.click(post, "steer:answer:0", user=ADA)
        reply = await d.user.reply(url)
        assert "You may not answer questions" in reply["text"]
        assert d.posts_to("/answer") == [] and post.edits == 0
        await d.click(post, "steer:answer:0", user=BOB)  # a member of the on-call group
        await wait_for(lambda: post.edits == 1)
        assert d.posts_to("/answer") == [{"kind": "yes"}]


async def test_a_stale_card_is_refused_and_brought_up_to_date(desk: Desk) -> None:
    run = asking(desk.fabro, question("yes_no"))
    post = await desk.alert(run)
    desk.fabro.answer(run["id"], "q-1", {"kind": "no"})  # someone answered in Fabro's web UI
    url = await desk.click(post, "steer:answer:0")
    reply = await desk.user.reply(url)
    assert "no longer waiting for an answer" in reply["text"]
    await wait_for(lambda: post.edits == 1)
    assert "Answered by grace: No" in str(post.blocks)
    assert desk.posts_to("/answer") == []


@pytest.mark.parametrize(
    ("status", "count", "told", "sent"),
    [
        (400, 1, "Fabro refused that", 1),
        (404, 1, "no longer knows run", 1),
        (409, 1, "Someone got there first", 1),
        (503, 1, None, 2),  # one retry, then it works
        (503, 2, "try again", 2),  # still failing: say so
    ],
)
async def test_fabro_errors_on_answer(desk: Desk, status: int, count: int, told: str | None, sent: int) -> None:
    run = asking(desk.fabro, question("yes_no"))
    post = await desk.alert(run)
    desk.fabro.fail_next(status, count, path_prefix=f"/api/v1/runs/{run['id']}/questions/q-1/answer")
    url = await desk.click(post, "steer:answer:0")
    if told is None:
        await wait_for(lambda: post.edits == 1)
        assert "Answered" in str(post.blocks)
    else:
        reply = await desk.user.reply(url)
        assert told in reply["text"]
        assert "request id" in reply["text"]
    assert len([r for r in desk.fabro.calls(method="POST") if r.path.endswith("/answer")]) == sent
    [action] = await desk.bot.store.actions_for_run(run["id"])
    assert action.state == ("done" if told is None else "failed")


async def test_a_fabro_timeout_on_answer_is_told_with_the_request_id_and_can_be_tried_again(desk: Desk) -> None:
    run = asking(desk.fabro, question("yes_no"))
    post = await desk.alert(run)
    desk.fabro.hang_next(5, path_prefix=f"/api/v1/runs/{run['id']}/questions/q-1/answer")
    url = await desk.click(post, "steer:answer:0")
    reply = await desk.user.reply(url, timeout=10)
    assert "did not answer in 2 s" in reply["text"] and "request id" in reply["text"]
    await desk.click(post, "steer:answer:0")
    await wait_for(lambda: post.edits == 1, timeout=10)


async def test_two_people_answering_at_once_send_one_answer(desk: Desk) -> None:
    run = asking(desk.fabro, question("yes_no"))
    post = await desk.alert(run)
    desk.fabro.latency = 0.2
    await asyncio.gather(desk.click(post, "steer:answer:0", user=ADA), desk.click(post, "steer:answer:1", user=BOB))
    await wait_for(lambda: post.edits == 1)
    assert len(desk.posts_to("/answer")) == 1


async def test_a_forged_control_is_refused_without_calling_fabro(desk: Desk) -> None:
    status, _, url = await desk.user.click(
        {"action_id": "steer:retry", "value": "retry"}, block_id="retry:../../etc", ephemeral=True
    )
    assert status == 200
    assert "no longer works" in (await desk.user.reply(url))["text"]
    assert desk.fabro.calls(method="POST") == []


async def test_an_answer_settles_the_same_alert_in_other_channels(desk: Desk) -> None:
    _, _, url = await desk.user.command("subscribe questions", channel="C0OTHER")
    await desk.user.reply(url)
    asking(desk.fabro, question("yes_no"))
    await desk.bot.alerter.cycle()
    [here] = desk.slack.posts(CHANNEL)[-1:]
    [there] = desk.slack.posts("C0OTHER")
    await desk.click(here, "steer:answer:0")
    await wait_for(lambda: here.edits == 1)
    await desk.bot.alerter.cycle()
    assert there.edits == 1 and f"by <@{ADA}>: Yes" in str(there.blocks)


async def test_answering_from_the_ephemeral_detail_card_through_the_modal_replaces_that_card(desk: Desk) -> None:
    run = asking(desk.fabro, question("freeform"))
    card, _ = await _detail_card(desk, run["id"])
    [block] = [b for b in card["blocks"] if b["type"] == "actions" and b["block_id"].startswith("answer:")]
    _status, _, url = await desk.user.click(
        {"action_id": "steer:text", "value": "text"}, block_id=block["block_id"], ephemeral=True
    )
    await wait_for(lambda: desk.slack.views)
    await desk.user.submit_view(desk.slack.views[-1], {"answer_text": "Roll back first"})
    reply = await desk.user.reply(url)
    assert reply["replace_original"] is True
    assert "by <@U123ADA>: Roll back first" in str(reply["blocks"])
    assert desk.posts_to("/answer") == [{"kind": "text", "text": "Roll back first"}]


async def test_slack_resending_a_mention_answers_once_and_says_nothing_twice(desk: Desk) -> None:
    run = asking(desk.fabro, question("yes_no"))
    post = await desk.alert(run)
    body = desk.user.mention_body("yes", channel=CHANNEL, thread_ts=post.ts)
    status, _ = await desk.user.post(body, content_type="application/json")
    assert status == 200
    await wait_for(lambda: post.edits == 1)
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    status, _ = await desk.user.post(body, retry, content_type="application/json")
    assert status == 200
    await desk.bot.alerter.cycle()  # give anything queued a chance to show
    assert desk.posts_to("/answer") == [{"kind": "yes"}]
    assert desk.slack.calls_to("chat.postEphemeral") == []


async def test_an_action_whose_answer_cannot_be_read_is_settled_not_locked(desk: Desk) -> None:
    """Fabro created the run but answered {"id": null}: the record is settled, never left pending."""
    run = make_run("running", title="Flaky")
    desk.fabro.add(run)
    desk.fabro.fail(run["id"])
    post = await desk.alert(run)
    desk.fabro.answer_next(
        201, b'{"id": null}', {"Content-Type": "application/json"}, path_prefix=f"/api/v1/runs/{run['id']}/retry"
    )
    url = await desk.click(post, "steer:retry")
    told = (await desk.user.reply(url))["text"]
    assert "already" not in told and "request id" in told
    [action] = await desk.bot.store.actions_for_run(run["id"])
    assert action.state.value == "failed"
    url = await desk.click(post, "steer:retry", user=BOB)  # not "already retrying": it can be tried again
    await wait_for(lambda: post.edits == 1)
    assert len(desk.posts_to("/retry")) == 2 and f"Retried by <@{BOB}>" in str(post.blocks)


async def test_cancelling_from_slack_is_no_failure_alert_and_the_cards_say_who(desk: Desk) -> None:
    run = asking(desk.fabro, question("yes_no"), title="Long job")
    post = await desk.alert(run)
    card, _ = await _detail_card(desk, run["id"])
    [block] = [b for b in card["blocks"] if b["type"] == "actions" and b["block_id"].startswith("cancel:")]
    _, _, url = await desk.user.click({"action_id": "steer:cancel", "value": "cancel"}, block_id=block["block_id"])
    reply = await desk.user.reply(url)
    assert f"Cancelled by <@{ADA}>" in str(reply["blocks"])
    await desk.bot.alerter.cycle()
    await desk.bot.alerter.cycle()
    assert desk.slack.alert_keys(CHANNEL) == [f"question:{run['id']}:q-1"]  # no "Run failed" alert
    assert f"Cancelled by <@{ADA}>" in str(post.blocks)  # the question alert says what happened


async def test_a_run_cancelled_in_fabro_is_told_on_its_alert_without_a_name(desk: Desk) -> None:
    run = asking(desk.fabro, question("yes_no"))
    post = await desk.alert(run)
    desk.fabro._set_status(run["id"], "failed", reason="cancelled")
    desk.fabro.questions[run["id"]] = []
    desk.fabro.runs[run["id"]]["current_question"] = None
    desk.fabro.emit(run["id"], "run.failed", {"failure": {"reason": "cancelled", "detail": {"message": "Cancelled"}}})
    await desk.bot.alerter.cycle()
    assert desk.slack.alert_keys(CHANNEL) == [f"question:{run['id']}:q-1"]
    assert "Cancelled in Fabro" in str(post.blocks)


async def test_denying_from_slack_is_no_failure_alert(desk: Desk) -> None:
    child = make_run("submitted", title="Child")
    desk.fabro.add(child)
    desk.fabro.request_approval(child["id"])
    post = await desk.alert(child)
    await desk.click(post, "steer:deny")
    await wait_for(lambda: desk.slack.views)
    await desk.user.submit_view(desk.slack.views[-1], {"deny_reason": "not during the freeze"})
    await wait_for(lambda: post.edits == 1)
    await desk.bot.alerter.cycle()
    assert desk.slack.alert_keys(CHANNEL) == [f"approval:{child['id']}"]
    assert f"Denied by <@{ADA}>: not during the freeze" in str(post.blocks)
