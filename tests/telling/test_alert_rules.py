"""Which runs deserve which alerts, and which subscriptions receive them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bot.core.keys import AlertKind
from bot.core.records import Subscription
from bot.fabro.models import Question, Run
from bot.telling.rules import DEFAULT_KINDS, SUBSCRIPTION_KINDS, channels_for, matches, wanted_alerts
from tests.fakes.runs import make_run, run_examples


def run(kind: str = "running", **kw: Any) -> Run:
    return Run.model_validate(make_run(kind, **kw))


def sub(channel: str = "C1", kinds: Iterable[str] = ("failed", "questions", "approvals"), **kw: Any) -> Subscription:
    return Subscription(0, channel, frozenset(kinds), **kw)


def test_failed_and_dead_runs_deserve_a_failure_alert_named_by_when_the_failure_ended() -> None:
    failed = make_run("failed", run_id="R1")
    failed["timestamps"]["completed_at"] = "2026-12-01T10:29:33.123456Z"
    assert [str(w.key) for w in wanted_alerts(Run.model_validate(failed))] == ["failed:R1:20261201T102933.123Z"]
    assert [w.kind for w in wanted_alerts(run("dead"))] == ["failed"]


def test_the_same_failure_read_twice_is_one_alert_and_a_failure_after_a_resume_is_another() -> None:
    failed = make_run("failed", run_id="R1")
    failed["timestamps"]["completed_at"] = "2026-12-01T10:29:33.123Z"
    [first] = wanted_alerts(Run.model_validate(failed))
    [again] = wanted_alerts(Run.model_validate(json.loads(json.dumps(failed))))
    failed["timestamps"]["completed_at"] = "2026-12-01T11:02:00.004+01:00"  # resumed, then failed again
    [second] = wanted_alerts(Run.model_validate(failed))
    assert first.key == again.key != second.key
    assert str(second.key) == "failed:R1:20261201T100200.004Z"  # in UTC, whatever offset Fabro wrote


def test_a_failure_fabro_sent_no_end_time_for_is_keyed_as_before() -> None:
    failed = make_run("failed", run_id="R1")
    failed["timestamps"]["completed_at"] = None
    assert [str(w.key) for w in wanted_alerts(Run.model_validate(failed))] == ["failed:R1"]


def test_an_archived_failure_deserves_nothing_and_a_success_only_those_who_asked_by_name() -> None:
    archived = make_run("failed")
    archived["lifecycle"]["archived"] = True
    assert wanted_alerts(Run.model_validate(archived)) == []
    assert [w.kind for w in wanted_alerts(run("succeeded"))] == [AlertKind.SUCCEEDED]
    every = Subscription(1, "C1", frozenset(SUBSCRIPTION_KINDS))  # every kind a channel can ask for
    default = Subscription(2, "C2", DEFAULT_KINDS)
    assert channels_for([every, default], run("succeeded"), AlertKind.SUCCEEDED) == ["C1"]
    assert wanted_alerts(run("running")) == []


def test_each_pending_question_is_its_own_alert() -> None:
    questions = [Question(id="q1", text="A?"), Question(id="q2", text="B?")]
    assert [str(w.key) for w in wanted_alerts(run("blocked", run_id="R1"), questions)] == [
        "question:R1:q1",
        "question:R1:q2",
    ]


def test_the_current_question_stands_in_when_questions_were_not_fetched() -> None:
    blocked = Run.model_validate(run_examples()[3])
    [wanted] = wanted_alerts(blocked)
    assert (
        str(wanted.key) == f"question:{blocked.id}:q-001"
        and wanted.question is not None
        and wanted.question.text.startswith("Should we proceed")
    )


def test_a_pending_approval_deserves_an_approval_alert() -> None:
    child = Run.model_validate(run_examples()[-1])
    assert [str(w.key) for w in wanted_alerts(child)] == [f"approval:{child.id}"]


def test_filters_narrow_a_subscription() -> None:
    r = run("failed", labels={"team": "core", "env": "prod"})
    assert matches(sub(), r, AlertKind.FAILED)
    assert not matches(sub(kinds=("questions",)), r, AlertKind.FAILED)
    assert matches(sub(repo="DEMO/api-server"), r, AlertKind.FAILED)
    assert not matches(sub(repo="demo/other"), r, AlertKind.FAILED)
    assert matches(sub(workflow="implement"), r, AlertKind.FAILED)
    assert not matches(sub(workflow="review"), r, AlertKind.FAILED)
    assert matches(sub(labels={"team": "core"}), r, AlertKind.FAILED)
    assert not matches(sub(labels={"team": "web"}), r, AlertKind.FAILED)


def test_a_channel_with_several_matching_subscriptions_gets_one_alert() -> None:
    subs = [sub("C1"), sub("C1", kinds=("failed",)), sub("C2", repo="demo/api-server"), sub("C3", repo="x/y")]
    assert channels_for(subs, run("failed"), AlertKind.FAILED) == ["C1", "C2"]


def test_cancelled_and_denied_runs_are_decisions_not_failures() -> None:
    """Deny and cancel end a run as `failed` too: a cancellation is its own kind, a denial gets no alert."""
    assert [str(w.key) for w in wanted_alerts(run("failed", run_id="R1", reason="cancelled"))] == ["cancelled:R1"]
    assert wanted_alerts(run("failed", reason="approval_denied")) == []
    for reason in ("terminated", "budget_exhausted", "workflow_error"):
        assert [w.kind for w in wanted_alerts(run("failed", reason=reason))] == ["failed"]


def test_cancellations_reach_only_subscriptions_that_ask_for_them_by_name() -> None:
    cancelled = run("failed", reason="cancelled")
    assert channels_for([sub("C1"), sub("C2", kinds=("cancelled",))], cancelled, AlertKind.CANCELLED) == ["C2"]
