"""What an alert is edited to say when its run moves on: who did what, read from Fabro's events."""

from __future__ import annotations

import pytest

from bot.alerts.outcomes import actor_name, alert_key_of_action, answer_text, outcome_of, retried_outcome, run_state
from bot.fabro.models import Run, RunEvent
from tests.fakes.runs import make_run


def event(name: str, seq: int, actor: dict | None = None, **properties) -> RunEvent:
    return RunEvent.model_validate({"seq": seq, "event": name, "actor": actor, "properties": properties})


@pytest.mark.parametrize(("actor", "shown"), [
    ({"kind": "user", "login": "grace"}, "grace"),
    ({"kind": "slack", "user_id": "U123ADA", "user_name": "ada"}, "<@U123ADA>"),
    ({"kind": "slack", "user_id": "<!channel>", "user_name": "<!channel>"}, "&lt;!channel&gt;"),
    ({"kind": "worker", "run_id": "01KJ"}, "run `01KJ`"),
    ({"kind": "system", "system_kind": "timeout"}, "Fabro (timeout)"),
    ({"kind": "webhook", "delivery_id": "d1"}, "a webhook"),
    (None, None),
])
def test_actors_are_named_for_people_and_never_ping_anyone(actor, shown):
    assert actor_name(actor) == shown


@pytest.mark.parametrize(("answer", "said"), [
    ({"kind": "yes"}, "Yes"),
    ({"kind": "no"}, "No"),
    ({"kind": "selected", "option_key": "k1"}, "Option one"),
    ({"kind": "multi_selected", "option_keys": ["k1", "k2"]}, "Option one, k2"),
    ({"kind": "text", "text": "ship <it> *now*"}, "“ship &lt;it&gt; *now*”"),
    ({"kind": "unknown"}, None),
])
def test_answers_are_said_as_people_would_say_them(answer, said):
    assert answer_text(answer, {"k1": "Option one"}) == said


RUN = Run.model_validate(make_run("running"))


@pytest.mark.parametrize(("events", "outcome"), [
    ([event("interview.completed", 5, {"kind": "user", "login": "grace"}, question_id="q-1", answer={"kind": "yes"})],
     "Answered by grace: Yes"),
    ([event("interview.completed", 5, None, question_id="q-2", answer={"kind": "yes"}), event("interview.timeout", 6, None, question_id="q-1")],
     "Timed out without an answer"),
    ([event("interview.interrupted", 7, None, question_id="q-1")], "Question withdrawn (interrupted)"),
    ([], "No longer waiting: the run is running"),
])
def test_a_question_alert_says_how_its_question_ended(events, outcome):
    assert outcome_of("question", f"question:{RUN.id}:q-1", RUN, events) == outcome


def test_an_approval_alert_says_who_decided_and_why():
    denied = make_run("failed", reason="approval_denied")
    denied["lifecycle"]["approval"] = {"state": "denied", "denial_reason": "freeze <week>"}
    run = Run.model_validate(denied)
    decided = [event("run.denied", 9, {"kind": "user", "login": "ada"}, reason="freeze <week>")]
    assert outcome_of("approval", f"approval:{run.id}", run, decided) == "Denied by ada: freeze &lt;week&gt;"
    approved = make_run("runnable")
    approved["lifecycle"]["approval"] = {"state": "approved"}
    assert outcome_of("approval", "approval:x", Run.model_validate(approved), []) == "Approved"


def test_a_failed_alert_says_superseded_archived_or_where_the_run_is():
    superseded = Run.model_validate(make_run("failed", superseded_by="01NEW"))
    assert outcome_of("failed", "failed:x", superseded, []) == "Superseded by run `01NEW`"
    archived = make_run("failed")
    archived["lifecycle"]["archived"] = True
    assert outcome_of("failed", "failed:x", Run.model_validate(archived), [event("run.archived", 3, {"kind": "user", "login": "bo"})]) == "Archived by bo"
    assert outcome_of("failed", "failed:x", Run.model_validate(make_run("running")), []) == "The run is now running"
    assert run_state(Run.model_validate(make_run("failed"))) == "failed (workflow_error)"


def test_a_retry_links_the_new_run_only_through_a_safe_url():
    new = Run.model_validate(make_run("submitted"))
    assert retried_outcome(new, "https://fabro.example.com/runs/" + new.id) == f"Retried → new run <https://fabro.example.com/runs/{new.id}|{new.id}>"
    assert retried_outcome(new, "javascript:alert(1)") == f"Retried → new run {new.id}"


@pytest.mark.parametrize(("action", "alert"), [
    ("answer:R1:q-1", "question:R1:q-1"), ("decide:R1", "approval:R1"), ("retry:R1", "failed:R1"), ("cancel:R1", None),
])
def test_actions_map_to_the_alert_they_settle(action, alert):
    assert alert_key_of_action(action) == alert
