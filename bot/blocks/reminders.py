"""Reminders and escalations: a question or approval still waiting, said louder each step.  [pure]"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.blocks import kit
from bot.blocks.text import escape
from bot.core.durations import waited
from bot.core.keys import AlertKey, AlertKind

__all__ = ["reminder_message"]


def reminder_message(
    step: str, key: AlertKey, age: timedelta, *, mention: str | None, name_the_run: bool = False
) -> dict[str, Any]:
    """`step` is `remind` (the owner is nudged) or `escalate` (the people named are asked to take it)."""
    what = "This question" if key.kind is AlertKind.QUESTION else "This approval"
    how_long = waited(age)
    if step == "remind":
        text = f"{what} has been waiting {how_long}." + (f" {mention}, it is waiting on you." if mention else "")
        icon = ":alarm_clock:"
    else:
        text = f"{what} has been waiting {how_long} and nobody has answered." + (
            f" {mention}, can you take it?" if mention else ""
        )
        icon = ":rotating_light:"
    if name_the_run:  # outside any alert's thread, the message says which run it is about
        text += f" (run `{escape(key.run_id)}`)"
    return {"text": text, "blocks": [kit.section(f"{icon} {text}", block_id=f"{step}:{key.run_id}")]}
