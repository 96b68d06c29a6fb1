"""The minimal card a channel shared with another organisation sees: status, title and link, whatever
the card it stands for carried, and nothing a person or an agent wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.blocks.alerts import failed_alert, question_alert, resolved_alert
from bot.blocks.exposure import MINIMAL_NOTE, for_exposure, kept_inside, minimal_outcome
from bot.blocks.live import live_card, update_reply
from bot.blocks.outcomes import outcome_text
from bot.blocks.presentation import Presentation
from bot.blocks.runs import run_detail_message, unfurl_card
from bot.core.exposure import Exposure
from bot.core.keys import AlertKey, AlertKind
from bot.core.outcomes import Outcome, OutcomeVerb
from bot.fabro.models import Failure, Question, Run, RunEvent
from tests.blocks.test_blocks import HOSTILE, assert_sendable
from tests.fakes.runs import make_run

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SHOWN = Presentation(web_base="https://fabro.example.com", command="/runs")
MARK = "§"  # only the secrets carry it: anywhere in the card, something was let through

_ordinary = st.text(alphabet=st.characters(blacklist_characters=MARK, blacklist_categories=["Cs"]), max_size=300)
_secret = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=3000).map(
    lambda s: f"{MARK}{s}{MARK}"
)
_kinds = st.sampled_from(["running", "blocked", "failed", "succeeded", "pending", "paused", "dead", "odd_state"])


def _run(kind: str, title: str, goal: str, question: str, denial: str) -> Run:
    raw = make_run(kind, title=title)
    raw["goal"] = goal
    raw["current_question"] = {"id": "q-1", "text": question, "question_type": "yes_no"}
    raw["lifecycle"]["approval"] = {"state": "denied", "denial_reason": denial}
    return Run.model_validate(raw)


def _cards(run: Run, question: str, failure: str, steer: str) -> list[dict[str, Any]]:
    asked = Question(id="q-1", text=question, context_display=failure)
    failed = Failure(reason="workflow_error", message=failure, causes=[failure])
    key = AlertKey(AlertKind.QUESTION, run.id, "q-1")
    web = SHOWN.web_base
    steered = Outcome(OutcomeVerb.STEERED, slack_user="U123ADA", answer=steer)
    event = RunEvent(seq=3, event="run.failed", properties={"failure": {"reason": "x", "detail": {"message": failure}}})
    reply = update_reply(event, run, now=NOW, web_base=web)
    return [
        question_alert(run, asked, now=NOW, asked_at=NOW, web_base=web, key=key),
        failed_alert(run, now=NOW, failure=failed, web_base=web),
        live_card(run, [], now=NOW, web_base=web),
        resolved_alert(run, outcome=outcome_text(steered), now=NOW, web_base=web),
        run_detail_message(run, now=NOW, failure=failed, web_base=web),
        {"text": "unfurl", **unfurl_card(run, now=NOW, web_base=web)},
        *([reply] if reply is not None else []),
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=_kinds,
    title=_ordinary,
    goal=_secret,
    question=_secret,
    failure=_secret,
    steer=_secret,
    denial=_secret,
)
def test_the_minimal_card_shows_nothing_a_person_or_an_agent_wrote_and_keeps_slacks_limits(
    kind: str, title: str, goal: str, question: str, failure: str, steer: str, denial: str
) -> None:
    run = _run(kind, title, goal, question, denial)
    steered = Outcome(OutcomeVerb.STEERED, slack_user="U123ADA", answer=steer, question=question, reason=denial)
    for card in _cards(run, question, failure, steer):
        card["metadata"] = {"event_type": "fabro_run_alert", "event_payload": {"key": "k", "run_id": run.id}}
        for outcome in (None, steered):
            minimal = for_exposure(card, run, Exposure.MINIMAL, SHOWN, outcome=outcome)
            shown = json.dumps(minimal, ensure_ascii=False)
            assert MARK not in shown
            assert_sendable(minimal)
            assert minimal["metadata"] == card["metadata"]  # the outbox still finds it after a crash
            assert "Open in Fabro" in shown and MINIMAL_NOTE in shown
        assert for_exposure(card, run, Exposure.FULL, SHOWN) is card


def test_the_minimal_card_names_the_run_by_its_title_escaped_or_else_its_id() -> None:
    titled = _run("failed", HOSTILE, "goal", "question", "reason")
    shown = json.dumps(for_exposure({"text": "x", "blocks": []}, titled, Exposure.MINIMAL, SHOWN), ensure_ascii=False)
    assert "&lt;!channel&gt;" in shown and "<!channel>" not in shown and "<@U123>" not in shown
    assert ":x: *failed* · workflow error" in shown
    untitled = Run.model_validate({**make_run("running"), "title": None, "goal": "secret goal"})
    shown = json.dumps(for_exposure({"text": "x", "blocks": []}, untitled, Exposure.MINIMAL, SHOWN), ensure_ascii=False)
    assert f"run `{untitled.id}`" in shown and "secret goal" not in shown
    assert f"`/runs {untitled.id}` shows the rest to you alone" in shown


def test_an_outcome_in_a_shared_channel_says_who_did_what_without_the_words() -> None:
    answered = Outcome(OutcomeVerb.ANSWERED, slack_user="U123ADA", question="Drop the table?", answer="yes, do")
    assert outcome_text(minimal_outcome(answered)) == "Answered by <@U123ADA>"
    denied = Outcome(OutcomeVerb.DENIED, slack_user="U123ADA", reason="not during the freeze")
    assert outcome_text(minimal_outcome(denied)) == "Denied by <@U123ADA>"
    steered = Outcome(OutcomeVerb.STEERED, slack_user="U123ADA", answer="use the staging db")
    assert outcome_text(minimal_outcome(steered)) == "↪ <@U123ADA> to the agent"


def test_a_refused_look_says_why_and_where_to_get_it_privately() -> None:
    for what, words in (("changes", "changes 01K"), ("cost", "cost 01K"), ("logs", "logs 01K"), ("graph", "01K")):
        said = kept_inside(what, run_id="01K", command="/runs")
        assert "shared with another organisation" in said["text"] and f"/runs {words}" in said["text"]
        assert_sendable(said)
    asked = kept_inside("ask", run_id="01K", command="/runs")
    assert "Fabro's answers are not posted here" in asked["text"] and "/runs 01K" in asked["text"]
