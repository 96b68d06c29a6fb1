"""A pending question as mrkdwn: text, stage, type, how long it waits, its options.  [pure]"""

from __future__ import annotations

from datetime import datetime

from bot.blocks.text import ago, clip, escape
from bot.fabro.models import Question

__all__ = ["question_text"]


def question_text(question: Question, *, now: datetime, asked_at: datetime | None) -> str:
    lines = [f":speech_balloon: *{clip(escape(question.text or 'A question is waiting.'), 1200)}*"]
    meta = []
    if question.stage:
        meta.append(f"stage `{escape(question.stage)}`")
    meta.append(escape(question.question_type.replace("_", " ")))
    waiting = ago(asked_at, now)
    if waiting:
        meta.append(f"waiting {waiting.removesuffix(' ago')}")
    lines.append(" · ".join(meta))
    for option in question.options[:10]:
        line = f"• *{clip(escape(option.label or option.key), 150)}*"
        if option.description:
            line += f" — {clip(escape(option.description), 200)}"
        lines.append(line)
    if len(question.options) > 10:
        lines.append(f"…and {len(question.options) - 10} more options")
    if question.allow_freeform:
        lines.append("_A free-text answer is also accepted._")
    return "\n".join(lines)
