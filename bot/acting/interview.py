"""A person's answer, as Slack delivered it, turned into Fabro's tagged answer body.  [pure]

Checked against the question as Fabro has it *now* (re-read before answering): its type
decides which kinds of answer it takes, and an option must still exist. Anything that
does not fit comes back as the sentence that explains why.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from bot.blocks.routing import resolve_choice
from bot.blocks.text import BOT_MENTION, escape
from bot.fabro.models import Question

__all__ = ["AnswerKind", "Choice", "answer_body", "reply_body"]

_YES = {"yes", "y", "yep", "ok", "okay", "confirm", "approve", "sure", "👍"}
_NO = {"no", "n", "nope", "decline", "reject", "👎"}


class AnswerKind(enum.StrEnum):
    YES = "yes"
    NO = "no"
    OPTION = "option"  # a value from a button or menu
    OPTIONS = "options"  # ticked checkboxes or a multi-select
    TEXT = "text"  # the answer modal
    REPLY = "reply"  # words in the alert's thread, read by question type


@dataclass(frozen=True)
class Choice:
    """An answer as Slack delivered it, before it is checked against the question."""

    kind: AnswerKind
    values: tuple[str, ...] = ()
    text: str | None = None


def answer_body(question: Question, choice: Choice) -> dict[str, Any] | str:
    """Fabro's tagged answer body for `choice`, or why `question` (as it is now) cannot take it."""
    qtype = question.question_type
    takes_text = qtype == "freeform" or question.allow_freeform
    if choice.kind == AnswerKind.REPLY:
        return reply_body(question, (choice.text or "").strip())
    if choice.kind in (AnswerKind.YES, AnswerKind.NO):
        if qtype not in ("yes_no", "confirmation"):
            return "That answer does not fit this question any more; open the run to answer it."
        return {"kind": str(choice.kind)}
    if choice.kind == AnswerKind.OPTION:
        if qtype != "multiple_choice":
            return "That answer does not fit this question any more; open the run to answer it."
        key = resolve_choice(question, choice.values[0] if choice.values else None)
        if key is None:
            return "That option is not one of this question's options any more."
        return {"kind": "selected", "option_key": key}
    if choice.kind == AnswerKind.OPTIONS:
        if qtype != "multi_select":
            return "That answer does not fit this question any more; open the run to answer it."
        keys = [resolve_choice(question, v) for v in choice.values]
        if not keys:
            return "Tick at least one option, then press Submit."
        if any(k is None for k in keys):
            return "One of those options is not one of this question's options any more."
        return {"kind": "multi_selected", "option_keys": list(dict.fromkeys(k for k in keys if k))}
    if not takes_text:
        return "This question does not take a written answer; use its buttons."
    text = (choice.text or "").strip()
    if not text:
        return "The answer is empty; write something, or use the buttons."
    return {"kind": "text", "text": text}


def reply_body(question: Question, text: str) -> dict[str, Any] | str:
    """Words in the alert's thread, read the way the question asks."""
    qtype = question.question_type
    words = re.sub(r"[.!]+$", "", text.lower()).strip()
    if not text:
        return f"Write your answer after mentioning me, e.g. `{BOT_MENTION} yes`."
    if qtype in ("yes_no", "confirmation"):
        if words in _YES:
            return {"kind": "yes"}
        if words in _NO:
            return {"kind": "no"}
        if question.allow_freeform:
            return {"kind": "text", "text": text}
        return "This question takes yes or no: reply `yes` or `no`, or use the buttons."
    by_word = {o.key.lower(): o.key for o in question.options} | {
        (o.label or "").lower(): o.key for o in question.options if o.label
    }
    if qtype == "multiple_choice" and words in by_word:
        return {"kind": "selected", "option_key": by_word[words]}
    if qtype == "multi_select":
        parts = [p.strip() for p in re.split(r"[,;]", words) if p.strip()]
        if parts and all(p in by_word for p in parts):
            return {"kind": "multi_selected", "option_keys": list(dict.fromkeys(by_word[p] for p in parts))}
    if qtype == "freeform" or question.allow_freeform:
        return {"kind": "text", "text": text}
    options = ", ".join(f"`{escape(o.key)}`" for o in question.options[:10])
    return f"This question takes one of its options ({options}): reply with one, or use the buttons."
