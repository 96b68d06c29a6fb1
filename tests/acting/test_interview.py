"""Answers as Slack delivers them become Fabro's tagged bodies, or a sentence saying why not."""

from __future__ import annotations

from typing import Any

import pytest

from bot.acting.interview import AnswerKind, Choice, answer_body, reply_body
from bot.fabro.models import Question


def q(qtype: str, options: int = 0, *, freeform: bool = False) -> Question:
    return Question.model_validate(
        {
            "id": "q",
            "text": "?",
            "question_type": qtype,
            "allow_freeform": freeform,
            "options": [{"key": f"k{i}", "label": f"Label {i}"} for i in range(options)],
        }
    )


@pytest.mark.parametrize(
    ("question", "choice", "body"),
    [
        (q("yes_no"), Choice(AnswerKind.YES), {"kind": "yes"}),
        (q("confirmation"), Choice(AnswerKind.NO), {"kind": "no"}),
        (q("multiple_choice", 3), Choice(AnswerKind.OPTION, ("k2",)), {"kind": "selected", "option_key": "k2"}),
        (
            q("multi_select", 3),
            Choice(AnswerKind.OPTIONS, ("k0", "k2", "k0")),
            {"kind": "multi_selected", "option_keys": ["k0", "k2"]},
        ),
        (q("freeform"), Choice(AnswerKind.TEXT, text="  roll back  "), {"kind": "text", "text": "roll back"}),
        (
            q("multiple_choice", 2, freeform=True),
            Choice(AnswerKind.TEXT, text="neither"),
            {"kind": "text", "text": "neither"},
        ),
    ],
)
def test_a_fitting_answer_becomes_fabros_tagged_body(question: Question, choice: Choice, body: dict[str, Any]) -> None:
    assert answer_body(question, choice) == body


@pytest.mark.parametrize(
    ("question", "choice", "why"),
    [
        (q("multiple_choice", 2), Choice(AnswerKind.YES), "does not fit this question"),
        (q("multiple_choice", 2), Choice(AnswerKind.OPTION, ("gone",)), "not one of this question's options"),
        (q("multi_select", 2), Choice(AnswerKind.OPTIONS, ()), "Tick at least one option"),
        (q("multi_select", 2), Choice(AnswerKind.OPTIONS, ("k0", "gone")), "not one of this question's options"),
        (q("yes_no"), Choice(AnswerKind.TEXT, text="maybe"), "does not take a written answer"),
        (q("freeform"), Choice(AnswerKind.TEXT, text="   "), "The answer is empty"),
    ],
)
def test_an_answer_that_does_not_fit_is_explained(question: Question, choice: Choice, why: str) -> None:
    result = answer_body(question, choice)
    assert isinstance(result, str) and why in result


@pytest.mark.parametrize(
    ("question", "words", "body"),
    [
        (q("yes_no"), "Yes!", {"kind": "yes"}),
        (q("confirmation"), "nope", {"kind": "no"}),
        (q("multiple_choice", 3), "label 1", {"kind": "selected", "option_key": "k1"}),
        (q("multiple_choice", 3), "K2", {"kind": "selected", "option_key": "k2"}),
        (q("multi_select", 3), "k0, label 2", {"kind": "multi_selected", "option_keys": ["k0", "k2"]}),
        (q("freeform"), "use the replica", {"kind": "text", "text": "use the replica"}),
        (q("yes_no", freeform=True), "only after 5pm", {"kind": "text", "text": "only after 5pm"}),
    ],
)
def test_a_thread_reply_is_read_the_way_the_question_asks(question: Question, words: str, body: dict[str, Any]) -> None:
    assert reply_body(question, words) == body


def test_a_thread_reply_that_fits_nothing_lists_what_would() -> None:
    why = reply_body(q("multiple_choice", 2), "whatever <!here>")
    assert isinstance(why, str) and "`k0`, `k1`" in why and "<!here>" not in why
    assert "yes` or `no`" in reply_body(q("yes_no"), "perhaps")
