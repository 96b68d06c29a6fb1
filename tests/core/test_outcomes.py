"""What an alert is edited to say when its run moves on: who did what, read from Fabro's events,
kept as data and put into words only when shown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.blocks.outcomes import actor_name, outcome_text
from bot.core.keys import ActionKey, ActionScope, AlertKey, AlertKind, Verb
from bot.core.outcomes import Outcome, OutcomeVerb, outcome_of, run_state, said
from bot.fabro.models import Run, RunEvent
from tests.fakes.runs import make_run


def event(name: str, seq: int, actor: dict[str, Any] | None = None, **properties: Any) -> RunEvent:
    return RunEvent.model_validate({"seq": seq, "event": name, "actor": actor, "properties": properties})


def shown(key: AlertKey, run: Run, events: list[RunEvent]) -> str:
    return outcome_text(outcome_of(key, run, events))


@pytest.mark.parametrize(
    ("actor", "name"),
    [
        ({"kind": "user", "login": "grace"}, "grace"),
        ({"kind": "slack", "user_id": "U123ADA", "user_name": "ada"}, "<@U123ADA>"),
        ({"kind": "slack", "user_id": "<!channel>", "user_name": "<!channel>"}, "&lt;!channel&gt;"),
        ({"kind": "worker", "run_id": "01KJ"}, "run `01KJ`"),
        ({"kind": "system", "system_kind": "timeout"}, "Fabro (timeout)"),
        ({"kind": "webhook", "delivery_id": "d1"}, "a webhook"),
        ({"kind": "agent", "session_id": "s1", "model": "claude-<x>"}, "an agent (claude-&lt;x&gt;)"),
        ({"kind": "agent", "session_id": "s1"}, "an agent"),
        ({}, None),
    ],
)
def test_actors_are_named_for_people_and_never_ping_anyone(actor: dict[str, Any], name: str | None) -> None:
    assert actor_name(actor) == name


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"kind": "yes"}, "yes"),
        ({"kind": "no"}, "no"),
        ({"kind": "selected", "option_key": "k1"}, "Option one"),
        ({"kind": "multi_selected", "option_keys": ["k1", "k2"]}, "Option one, k2"),
        ({"kind": "text", "text": "ship <it> *now*"}, "ship <it> *now*"),
        ({"kind": "unknown"}, None),
    ],
)
def test_answers_are_said_as_fabro_says_them(answer: dict[str, Any], words: str | None) -> None:
    assert said(answer, {"k1": "Option one"}) == words


RUN = Run.model_validate(make_run("running"))
Q1 = AlertKey(AlertKind.QUESTION, RUN.id, "q-1")


@pytest.mark.parametrize(
    ("events", "outcome"),
    [
        (
            [event("interview.completed", 5, {"kind": "user", "login": "grace"}, question_id="q-1", answer="yes")],
            "Answered by grace: Yes",
        ),
        (
            [event("interview.completed", 5, None, question_id="q-1", answer="Blue, <!here>")],
            "Answered: Blue, &lt;!here&gt;",
        ),
        (
            [
                event("interview.completed", 5, None, question_id="q-2", answer="yes"),
                event("interview.timeout", 6, None, question_id="q-1"),
            ],
            "Timed out without an answer",
        ),
        ([event("interview.interrupted", 7, None, question_id="q-1")], "Question withdrawn (interrupted)"),
        ([], "No longer waiting: the run is running"),
    ],
)
def test_a_question_alert_says_how_its_question_ended(events: list[RunEvent], outcome: str) -> None:
    assert shown(Q1, RUN, events) == outcome


def test_an_approval_alert_says_who_decided_and_why() -> None:
    denied = make_run("failed", reason="approval_denied")
    denied["lifecycle"]["approval"] = {"state": "denied", "denial_reason": "freeze <week>"}
    run = Run.model_validate(denied)
    decided = [event("run.denied", 9, {"kind": "user", "login": "ada"}, reason="freeze <week>")]
    assert shown(AlertKey(AlertKind.APPROVAL, run.id), run, decided) == "Denied by ada: freeze &lt;week&gt;"
    approved = make_run("runnable")
    approved["lifecycle"]["approval"] = {"state": "approved"}
    assert shown(AlertKey(AlertKind.APPROVAL, "x"), Run.model_validate(approved), []) == "Approved"


def test_a_cancelled_run_settles_its_question_and_approval_alerts_as_cancelled() -> None:
    run = Run.model_validate(make_run("failed", reason="cancelled"))
    for key in (AlertKey(AlertKind.QUESTION, run.id, "q-1"), AlertKey(AlertKind.APPROVAL, run.id)):
        assert shown(key, run, []) == "Cancelled in Fabro"
        assert outcome_text(outcome_of(key, run, []).by("U123ADA")) == "Cancelled by <@U123ADA>"


def test_a_failed_alert_says_superseded_archived_or_where_the_run_is() -> None:
    failed = AlertKey(AlertKind.FAILED, "x")
    superseded = Run.model_validate(make_run("failed", superseded_by="01NEW"))
    assert shown(failed, superseded, []) == "Superseded by run `01NEW`"
    archived = make_run("failed")
    archived["lifecycle"]["archived"] = True
    archived_run = Run.model_validate(archived)
    assert shown(failed, archived_run, [event("run.archived", 3, {"kind": "user", "login": "bo"})]) == "Archived by bo"
    assert shown(failed, Run.model_validate(make_run("running")), []) == "The run is now running"
    assert run_state(Run.model_validate(make_run("failed"))) == "failed (workflow_error)"


def test_a_retry_links_the_new_run_only_through_a_safe_url() -> None:
    new = Run.model_validate(make_run("submitted"))
    good = Outcome(OutcomeVerb.RETRIED, run_id=new.id, run_url=new.web_url("https://fabro.example.com"))
    assert outcome_text(good) == f"Retried → new run <https://fabro.example.com/runs/{new.id}|{new.id}>"
    bad = Outcome(OutcomeVerb.RETRIED, run_id=new.id, run_url="javascript:alert(1)")
    assert outcome_text(bad) == f"Retried → new run {new.id}"
    assert outcome_text(bad.by("U0ADA")) == f"Retried by <@U0ADA> → new run {new.id}"


def test_the_slack_user_who_acted_through_the_bot_wins_over_fabros_token_user() -> None:
    outcome = Outcome(OutcomeVerb.APPROVED, actor={"kind": "user", "login": "dev"}).by("U0ADA")
    assert outcome_text(outcome) == "Approved by <@U0ADA>"


@pytest.mark.parametrize(
    ("action", "alert"),
    [
        (ActionKey.of(Verb.ANSWER, "R1", "q-1"), AlertKey(AlertKind.QUESTION, "R1", "q-1")),
        (ActionKey.of(Verb.APPROVE, "R1"), AlertKey(AlertKind.APPROVAL, "R1")),
        (ActionKey.of(Verb.DENY, "R1"), AlertKey(AlertKind.APPROVAL, "R1")),
        (ActionKey.of(Verb.RETRY, "R1"), AlertKey(AlertKind.FAILED, "R1")),
        (ActionKey.of(Verb.CANCEL, "R1"), None),
    ],
)
def test_actions_map_to_the_alert_they_settle(action: ActionKey, alert: AlertKey | None) -> None:
    assert action.alert == alert


def test_approve_and_deny_use_up_the_same_decision() -> None:
    assert ActionKey.of(Verb.APPROVE, "R1") == ActionKey.of(Verb.DENY, "R1") == ActionKey(ActionScope.DECIDE, "R1")


_ids = st.from_regex(r"[0-9A-Za-z_-]{1,64}", fullmatch=True)
_question_ids = st.from_regex(r"[^\s]{1,150}", fullmatch=True)


@given(kind=st.sampled_from(AlertKind), run_id=_ids, question_id=_question_ids)
def test_alert_keys_round_trip(kind: AlertKind, run_id: str, question_id: str) -> None:
    named = kind in (AlertKind.QUESTION, AlertKind.UPDATE, AlertKind.PR, AlertKind.REPLY)
    key = AlertKey(kind, run_id, question_id if named else None)
    assert AlertKey.parse(key.encode()) == key


@given(verb=st.sampled_from(Verb), run_id=_ids, question_id=_question_ids)
def test_action_keys_round_trip(verb: Verb, run_id: str, question_id: str) -> None:
    key = ActionKey.of(verb, run_id, question_id)
    assert ActionKey.parse(key.encode()) == key


@given(st.text(max_size=300))
def test_any_text_parses_to_a_key_or_none_never_an_error(text: str) -> None:
    for kind in (AlertKey, ActionKey):
        parsed = kind.parse(text)
        assert parsed is None or parsed.encode() == text


@pytest.mark.parametrize("text", ["question:R1", "failed:R1:q-1", "decide:R1:q", "answer:R1", "nope:R1", "failed:", ""])
def test_keys_that_break_their_shape_do_not_parse(text: str) -> None:
    assert AlertKey.parse(text) is None and ActionKey.parse(text) is None


_outcomes = st.builds(
    Outcome,
    verb=st.sampled_from(OutcomeVerb),
    slack_user=st.none() | st.text(max_size=20),
    actor=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
    question=st.none() | st.text(max_size=50),
    answer=st.none() | st.text(max_size=50),
    reason=st.none() | st.text(max_size=50),
    run_id=st.none() | _ids,
    state=st.none() | st.text(max_size=20),
    subject=st.none() | st.sampled_from(AlertKind),
    at=st.none() | st.datetimes(timezones=st.just(UTC)),
    text=st.none() | st.text(max_size=50),
)


@given(_outcomes)
def test_stored_outcomes_come_back_as_they_were(outcome: Outcome) -> None:
    assert Outcome.load(outcome.dump()) == outcome


def test_text_stored_by_an_earlier_version_is_kept_as_it_was_shown() -> None:
    legacy = Outcome.load("Answered *Deploy?* by <@U1>: Yes")
    assert legacy is not None and legacy.verb is OutcomeVerb.LEGACY
    assert outcome_text(legacy) == "Answered *Deploy?* by <@U1>: Yes"
    assert Outcome.load(None) is None
    assert Outcome(OutcomeVerb.TIMED_OUT, at=datetime(2026, 1, 1, tzinfo=UTC)).dump().startswith('{"v":1')


def test_a_failed_alert_whose_run_failed_again_since_says_it_was_resumed() -> None:
    again = make_run("failed")
    again["timestamps"]["completed_at"] = "2026-12-01T11:00:00.000Z"
    earlier = AlertKey(AlertKind.FAILED, again["id"], failure="20261201T102933.123Z")
    assert shown(earlier, Run.model_validate(again), []) == "Resumed from its last checkpoint"
    # An alert stored before failures were told apart cannot tell, and says where the run is.
    assert shown(AlertKey(AlertKind.FAILED, again["id"]), Run.model_validate(again), []).startswith("The run is now")
