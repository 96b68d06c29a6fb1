"""Every click the bot's own messages and windows can send reads back as what they encoded; anything else
reads as `Unreadable` or `Ignored`, never as an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.acting.interview import AnswerKind, Choice
from bot.acting.steering import Where
from bot.blocks.controls import ANSWER_INPUT, DENY_INPUT, MERGE_INPUT, STEER_INPUT
from bot.blocks.routing import (
    ANSWER_MODAL,
    DENY_MODAL,
    MERGE_CONFIRM,
    MERGE_MODAL,
    START_MODAL,
    START_PICK,
    STEER_MODAL,
    STEER_VERBS,
    ModalContext,
    Target,
    control_block_id,
    encode_modal,
    encode_page,
    encode_picker,
    encode_start,
    show_action_id,
    steer_action_id,
)
from bot.core.keys import Verb
from bot.core.query import MAX_LIMIT, RunQuery
from bot.listeners import clicks as c

run_ids = st.from_regex(r"[0-9A-Za-z_-]{1,64}", fullmatch=True)
question_ids = st.from_regex(r"[!-~]{1,150}", fullmatch=True)
channels = st.from_regex(r"[CGD][A-Z0-9]{2,12}", fullmatch=True)
users = st.from_regex(r"[UW][A-Z0-9]{2,12}", fullmatch=True)
timestamps = st.from_regex(r"[0-9]{10}\.[0-9]{6}", fullmatch=True)
urls = st.from_regex(r"https://hooks\.slack\.com/actions/[A-Za-z0-9/]{1,60}", fullmatch=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def pressed(action: dict[str, Any], *, user: str, channel: str | None = None, ts: str | None = None) -> dict[str, Any]:
    """A block_actions payload as Slack sends it for a button on a message (or in Home, with no channel)."""
    container = (
        {"type": "message", "channel_id": channel, "message_ts": ts, "is_ephemeral": False}
        if channel
        else {"type": "view", "view_id": "V0HOME"}
    )
    return {
        "type": "block_actions",
        "user": {"id": user},
        "container": container,
        "trigger_id": "1.2.abc",
        "response_url": "https://hooks.slack.com/actions/T0/1/x",
        "actions": [{"type": "button", "action_ts": "1700000000.000100", **action}],
    }


def submitted(callback_id: str, metadata: str, values: dict[str, Any], *, user: str) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "user": {"id": user},
        "view": {
            "id": "V0WINDOW1",
            "callback_id": callback_id,
            "private_metadata": metadata,
            "state": {"values": values},
        },
    }


def typed(block: str, words: str) -> dict[str, Any]:
    return {block: {block: {"type": "plain_text_input", "value": words}}}


def chosen(block: str, value: str) -> dict[str, Any]:
    return {block: {block: {"type": "static_select", "selected_option": {"value": value}}}}


@given(verb=st.sampled_from(STEER_VERBS), run_id=run_ids, question_id=question_ids, user=users, channel=channels)
def test_every_run_card_button_reads_back_its_verb_and_target(
    verb: str, run_id: str, question_id: str, user: str, channel: str
) -> None:
    target = Target(run_id, question_id)
    body = pressed(
        {"action_id": steer_action_id(verb), "block_id": control_block_id("answer", target), "value": "yes"},
        user=user,
        channel=channel,
        ts="1700000000.000001",
    )
    if verb == "choose":
        body["actions"][0]["selected_option"] = {"value": "opt-1"}
    if verb == "submit":
        block = control_block_id("answer", target)
        body["state"] = {"values": {block: {"x": {"selected_options": [{"value": "a"}, {"value": "b"}]}}}}
    click = c.read_click(body)
    expected: dict[str, type] = {
        "answer": c.Answer,
        "choose": c.Answer,
        "submit": c.Answer,
        "pick": c.Ignored,
        "text": c.OpenWindow,
        "approve": c.Approve,
        "deny": c.OpenWindow,
        "retry": c.Retry,
        "cancel": c.Cancel,
        "create_pr": c.CreatePullRequest,
        "merge": c.OpenWindow,
        "close_pr": c.OpenWindow,
        "steer_text": c.OpenWindow,
        "interrupt": c.Control,
        "pause": c.Control,
        "resume": c.Control,
        "changes": c.Inspect,
        "cost": c.Inspect,
        "logs": c.Inspect,
        "graph": c.Inspect,
        "patch": c.Inspect,
        "ask": c.OpenWindow,
    }
    assert isinstance(click, expected[verb])
    if not isinstance(click, c.Ignored):
        assert isinstance(
            click,
            c.Answer
            | c.OpenWindow
            | c.Approve
            | c.Retry
            | c.Cancel
            | c.CreatePullRequest
            | c.ClosePullRequest
            | c.Control
            | c.Inspect,
        )
        assert click.target == target
    if isinstance(click, c.Answer | c.Approve | c.Retry | c.Cancel | c.Control):
        assert click.origin.who.user_id == user and click.origin.who.channel == channel
        assert click.origin.surface is c.Surface.MESSAGE


def test_the_answer_buttons_carry_the_choice_they_show() -> None:
    target = Target("01KJW4MG", "q-1")
    block = control_block_id("answer", target)

    def answer(action: dict[str, Any], state: dict[str, Any] | None = None) -> c.Click:
        body = pressed({"block_id": block, **action}, user="U0ADA", channel="C0TEAM", ts="1700000000.000001")
        if state is not None:
            body["state"] = {"values": {block: state}}
        return c.read_click(body)

    def choice(action: dict[str, Any], state: dict[str, Any] | None = None) -> Choice:
        click = answer(action, state)
        assert isinstance(click, c.Answer), click
        return click.choice

    assert choice({"action_id": steer_action_id("answer"), "value": "yes"}) == Choice(AnswerKind.YES)
    assert choice({"action_id": steer_action_id("answer", 2), "value": "#2"}) == Choice(AnswerKind.OPTION, ("#2",))
    menu = {"action_id": steer_action_id("choose"), "selected_option": {"value": "blue"}}
    assert choice(menu) == Choice(AnswerKind.OPTION, ("blue",))
    ticked = {"boxes": {"selected_options": [{"value": "a"}, {"value": "c"}]}}
    assert choice({"action_id": steer_action_id("submit")}, ticked) == Choice(AnswerKind.OPTIONS, ("a", "c"))
    assert isinstance(answer({"action_id": steer_action_id("submit")}, {}), c.NothingPicked)


def test_an_answer_button_on_a_card_without_a_question_is_unreadable() -> None:
    body = pressed(
        {
            "action_id": steer_action_id("answer"),
            "block_id": control_block_id("retry", Target("01KJW4MG")),
            "value": "yes",
        },
        user="U0ADA",
        channel="C0TEAM",
    )
    assert c.read_click(body) == c.Unreadable(c.Stale.CONTROL, "U0ADA")


def test_a_button_in_home_is_shown_in_home() -> None:
    body = pressed(
        {"action_id": steer_action_id("retry"), "block_id": control_block_id("retry", Target("01KJW4MG"))},
        user="U0ADA",
    )
    click = c.read_click(body)
    assert isinstance(click, c.Retry) and click.origin.surface is c.Surface.HOME and click.origin.who.channel is None


def test_pause_interrupt_and_resume_are_each_one_request_named_by_the_click() -> None:
    block = control_block_id("agent", Target("01KJW4MG"))
    reads: list[c.Control] = []
    for v in ("interrupt", "pause", "resume"):
        read = c.read_click(
            pressed({"action_id": steer_action_id(v), "block_id": block}, user="U0ADA", channel="C0TEAM")
        )
        assert isinstance(read, c.Control), read
        reads.append(read)
    assert [r.verb for r in reads] == [Verb.INTERRUPT, Verb.PAUSE, Verb.RESUME]
    assert {r.intent for r in reads} == {c.intent_of("1700000000.000100")}


@given(
    run_id=run_ids,
    question_id=st.none() | question_ids,
    channel=st.none() | channels,
    ts=st.none() | timestamps,
    url=st.none() | urls,
    user=users,
)
def test_a_window_opened_from_a_card_acts_on_that_card(
    run_id: str, question_id: str | None, channel: str | None, ts: str | None, url: str | None, user: str
) -> None:
    opened = c.read_click(
        pressed(
            {"action_id": steer_action_id("deny"), "block_id": control_block_id("decide", Target(run_id))},
            user=user,
            channel=channel,
            ts=ts,
        )
    )
    assert isinstance(opened, c.OpenWindow) and opened.window is c.Window.DENY and opened.trigger_id == "1.2.abc"
    context = ModalContext(Target(run_id, question_id), channel, ts, url)
    denied = c.read_click(submitted(DENY_MODAL, encode_modal(context), typed(DENY_INPUT, "not now"), user=user))
    assert denied == c.Deny(c.Origin(Where(user, channel, ts), c.Surface.WINDOW, url), context.target, "not now")


@given(run_id=run_ids, question_id=question_ids, user=users, words=st.text(min_size=1, max_size=200))
def test_a_written_answer_reads_back_as_typed_or_keeps_the_window_open(
    run_id: str, question_id: str, user: str, words: str
) -> None:
    metadata = encode_modal(ModalContext(Target(run_id, question_id)))
    click = c.read_click(submitted(ANSWER_MODAL, metadata, typed(ANSWER_INPUT, words), user=user))
    if words.strip():
        assert click == c.Answer(
            c.Origin(Where(user), c.Surface.WINDOW), Target(run_id, question_id), Choice(AnswerKind.TEXT, text=words)
        )
    else:
        assert isinstance(click, c.Unfinished) and click.block == ANSWER_INPUT


def test_the_steer_window_is_one_intent_and_the_merge_windows_carry_the_method() -> None:
    metadata = encode_modal(ModalContext(Target("01KJW4MG"), "C0TEAM", "1700000000.000001"))
    steer = c.read_click(submitted(STEER_MODAL, metadata, typed(STEER_INPUT, "use the fast path"), user="U0ADA"))
    assert isinstance(steer, c.Steer) and steer.intent == c.intent_of("V0WINDOW1") and not steer.interrupt
    assert isinstance(c.read_click(submitted(MERGE_MODAL, metadata, {}, user="U0ADA")), c.Unfinished)
    step = c.read_click(submitted(MERGE_MODAL, metadata, chosen(MERGE_INPUT, "squash"), user="U0ADA"))
    assert isinstance(step, c.ChooseMerge) and step.context.method == "squash"
    final = c.read_click(submitted(MERGE_CONFIRM, encode_modal(step.context), {}, user="U0ADA"))
    assert final == c.Merge(
        c.Origin(Where("U0ADA", "C0TEAM", "1700000000.000001"), c.Surface.WINDOW), Target("01KJW4MG"), "squash"
    )


@given(
    automation=st.from_regex(r"[0-9A-Za-z_.-]{1,128}", fullmatch=True),
    intent=st.from_regex(r"[0-9a-f]{8,40}", fullmatch=True),
    channel=st.none() | channels,
    user=users,
)
def test_a_start_button_reads_back_its_automation_intent_and_channel(
    automation: str, intent: str, channel: str | None, user: str
) -> None:
    value = encode_start(automation, intent, channel)
    go = c.read_click(pressed({"action_id": "start:go", "value": value}, user=user, channel=channel))
    assert go == c.Start(c.Origin(Where(user, channel), nonce=intent), automation, intent)
    # Its intent is the nonce the bot stored when it showed the confirmation to that person.
    assert c.binding_of(go) == (intent, user, f"start:{automation}")
    assert c.read_click(pressed({"action_id": "start:cancel", "value": value}, user=user)) == c.DismissStart()


def test_every_window_submission_names_the_window_it_must_have_been_opened_as() -> None:
    nonce = "ab" * 16
    context = ModalContext(Target("01KJW4MG", "q-1"), "C0TEAM", "1700000000.000001", nonce=nonce)
    metadata = encode_modal(context)
    answer = c.read_click(submitted(ANSWER_MODAL, metadata, typed(ANSWER_INPUT, "ship it"), user="U0ADA"))
    assert c.binding_of(answer) == (nonce, "U0ADA", "answer:01KJW4MG:q-1")
    plain = encode_modal(ModalContext(Target("01KJW4MG"), "C0TEAM", "1700000000.000001", nonce=nonce))
    steer = c.read_click(submitted(STEER_MODAL, plain, typed(STEER_INPUT, "go"), user="U0ADA"))
    assert c.binding_of(steer) == (nonce, "U0ADA", "steer:01KJW4MG")
    step = c.read_click(submitted(MERGE_MODAL, plain, chosen(MERGE_INPUT, "squash"), user="U0ADA"))
    assert isinstance(step, c.ChooseMerge) and c.binding_of(step) == (nonce, "U0ADA", "merge:01KJW4MG")
    final = c.read_click(submitted(MERGE_CONFIRM, encode_modal(step.context), {}, user="U0BOB"))
    assert c.binding_of(final) == (nonce, "U0BOB", "merge:01KJW4MG")  # the nonce survives the second step
    forged = c.read_click(submitted(DENY_MODAL, encode_modal(ModalContext(Target("01KJW4MG"))), {}, user="U0ADA"))
    assert c.binding_of(forged) == (None, "U0ADA", "deny:01KJW4MG")  # no nonce: refused by the listener
    picker = c.read_click(submitted(START_MODAL, encode_picker("C0TEAM", nonce), chosen(START_PICK, "n"), user="U0ADA"))
    assert c.binding_of(picker) == (nonce, "U0ADA", "start")
    approve = {"action_id": steer_action_id("approve"), "block_id": control_block_id("decide", Target("01KJW4MG"))}
    card = pressed({**approve, "value": "approve"}, user="U0ADA", channel="C0TEAM", ts="1700000000.000001")
    assert (
        isinstance(c.read_click(card), c.Approve) and c.binding_of(c.read_click(card)) is None
    )  # a button on a card is bound to nothing


def test_the_start_window_starts_once_per_window() -> None:
    values = chosen(START_PICK, "nightly")
    click = c.read_click(submitted(START_MODAL, encode_picker("C0TEAM"), values, user="U0ADA"))
    assert click == c.Start(c.Origin(Where("U0ADA", "C0TEAM"), c.Surface.WINDOW), "nightly", c.intent_of("v0window1"))
    assert isinstance(c.read_click(submitted(START_MODAL, encode_picker(None), {}, user="U0ADA")), c.Unfinished)


@given(
    statuses=st.lists(st.sampled_from(["failed", "running", "succeeded"]), unique=True, max_size=3),
    limit=st.integers(1, MAX_LIMIT),
    offset=st.integers(0, 500),
    in_place=st.booleans(),
)
def test_a_listing_button_reads_back_its_query(statuses: list[str], limit: int, offset: int, in_place: bool) -> None:
    query = RunQuery(statuses=tuple(statuses), limit=limit, offset=offset)
    action_id = "runs_page:next" if in_place else show_action_id("failed")
    click = c.read_click(pressed({"action_id": action_id, "value": encode_page(query)}, user="U0ADA"))
    assert click == c.ShowRuns(query, in_place, user="U0ADA")


def test_follow_needs_a_channel_and_link_buttons_are_only_acknowledged() -> None:
    follow = {"action_id": "runs_follow", "value": "01KJW4MG"}
    assert c.read_click(pressed(follow, user="U0ADA", channel="C0TEAM", ts="1700000000.000001")) == c.Follow(
        Where("U0ADA", "C0TEAM", "1700000000.000001"), "01KJW4MG"
    )
    assert c.read_click(pressed(follow, user="U0ADA")) == c.Unreadable(c.Stale.LISTING, "U0ADA")
    assert c.read_click(pressed({"action_id": "runs_link:open"}, user="U0ADA")) == c.Ignored()


@given(body=st.dictionaries(st.sampled_from(["type", "user", "actions", "view", "container", "state"]), json_values))
def test_any_payload_reads_as_some_click_without_raising(body: dict[str, Any]) -> None:
    assert isinstance(c.read_click(body), c.Click)


@given(action=st.dictionaries(st.sampled_from(["action_id", "block_id", "value", "selected_option"]), json_values))
def test_a_forged_action_on_a_run_card_is_never_an_act_without_a_target(action: dict[str, Any]) -> None:
    click = c.read_click({"type": "block_actions", "user": {"id": "U0ADA"}, "actions": [action]})
    if isinstance(click, c.Answer):
        assert click.target.question_id is not None


def test_a_look_from_a_channel_card_is_answered_in_the_cards_thread_and_from_an_ephemeral_one_privately() -> None:
    target = Target("01KJW4MG", None)
    action = {"action_id": steer_action_id("changes"), "block_id": control_block_id("inspect", target)}
    in_channel = c.read_click(pressed(action, user="U0ADA", channel="C0TEAM", ts="1700000000.000001"))
    assert isinstance(in_channel, c.Inspect) and in_channel.thread == "1700000000.000001"
    reply = pressed(action, user="U0ADA", channel="C0TEAM", ts="1700000000.000009")
    reply["message"] = {"ts": "1700000000.000009", "thread_ts": "1700000000.000001"}
    in_thread = c.read_click(reply)
    assert isinstance(in_thread, c.Inspect) and in_thread.thread == "1700000000.000001"
    ephemeral = pressed(action, user="U0ADA", channel="C0TEAM", ts="1700000000.000001")
    ephemeral["container"]["is_ephemeral"] = True
    private = c.read_click(ephemeral)
    assert isinstance(private, c.Inspect) and private.thread is None
    by_someone_else = c.read_click(pressed(action, user="U0BOB", channel="C0TEAM", ts="1"))
    assert isinstance(by_someone_else, c.Inspect)
    assert in_channel.intent != by_someone_else.intent


def test_the_ask_window_reads_back_the_question_and_the_thread_it_answers_in() -> None:
    from bot.blocks.inspect import ASK_INPUT
    from bot.blocks.routing import ASK_MODAL, ModalContext, encode_modal

    metadata = encode_modal(ModalContext(Target("01KJW4MG"), "C0TEAM", "1700000000.000001"))
    click = c.read_click(submitted(ASK_MODAL, metadata, typed(ASK_INPUT, "why did it fail?"), user="U0ADA"))
    assert isinstance(click, c.Ask)
    assert (click.words, click.thread, click.origin.who.channel) == ("why did it fail?", "1700000000.000001", "C0TEAM")
    empty = c.read_click(submitted(ASK_MODAL, metadata, typed(ASK_INPUT, "  "), user="U0ADA"))
    assert isinstance(empty, c.Unfinished)
    forged = c.read_click(submitted(ASK_MODAL, '{"v":1,"r":"bad id!"}', typed(ASK_INPUT, "hi"), user="U0ADA"))
    assert isinstance(forged, c.Unreadable)
