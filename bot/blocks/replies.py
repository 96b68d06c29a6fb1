"""Help, usage errors and failure replies: what a person reads when things are not a list.  [pure]

User-facing sentences are constants so tests can assert on exactly what people see.
"""

from __future__ import annotations

from typing import Any

from bot.blocks import kit
from bot.blocks.text import escape
from bot.fabro.errors import (
    FabroError,
    FabroNotFound,
    FabroRejected,
    FabroUnauthorized,
    FabroUnavailable,
)
from bot.query import EXAMPLES, GRAMMAR, UsageError

__all__ = [
    "FABRO_DOWN",
    "FABRO_REJECTED",
    "FABRO_TIMEOUT",
    "FABRO_UNAUTHORIZED",
    "INTERNAL_ERROR",
    "RUN_NOT_FOUND",
    "error_message",
    "help_message",
    "internal_error_message",
    "usage_error_message",
]

Message = dict[str, Any]

FABRO_TIMEOUT = "Fabro did not answer in {seconds} s — request id `{request_id}`. Try again in a moment."
FABRO_DOWN = "Fabro could not be reached ({detail}) — request id `{request_id}`. Try again in a moment."
FABRO_UNAUTHORIZED = (
    "Fabro refused this bot's API token ({detail}). An admin should check `FABRO_API_TOKEN` "
    "(`fabro-slack-bot check` tests it) — request id `{request_id}`."
)
RUN_NOT_FOUND = "No run matches `{selector}`. Check the id, or list runs with `{command} active`."
FABRO_REJECTED = "Fabro refused that request: {detail} — request id `{request_id}`."
INTERNAL_ERROR = (
    "Something went wrong on our side and it has been logged — reference `{reference}`. "
    "Please try again; if it keeps happening, share the reference with whoever runs this bot."
)


def help_message(command: str) -> Message:
    cmd = escape(command)
    examples = "\n".join(f"• `{cmd} {escape(example)}` — {why}" for example, why in EXAMPLES)
    blocks = [
        kit.section(f"*{cmd}* lists and shows Fabro runs.\n{GRAMMAR.replace('/runs', cmd)}"),
        kit.section(f"*Examples*\n{examples}"),
        kit.context("Words go in any order and are case-insensitive. Answers are only visible to you."),
    ]
    return {"text": f"{command}: list and show Fabro runs. Try `{command} blocked`.", "blocks": blocks}


def usage_error_message(error: UsageError, command: str) -> Message:
    cmd = escape(command)
    lines = [f":warning: {escape(error.problem)}"]
    if error.suggestion:
        lines.append(f"Did you mean `{escape(error.suggestion)}`?")
    lines += [f"Hint: {escape(h)}" for h in error.hints]
    blocks = [
        kit.section("\n".join(lines), block_id="usage:problem"),
        kit.section(GRAMMAR.replace("/runs", cmd), block_id="usage:grammar"),
    ]
    text = escape(error.problem)
    if error.suggestion:
        text += f" Did you mean `{escape(error.suggestion)}`?"
    return {"text": text, "blocks": blocks}


def error_text(error: FabroError, *, command: str = "/runs", selector: str | None = None) -> str:
    """One friendly sentence for a Fabro failure; never a secret, never a stack trace."""
    request_id = escape(error.request_id or "none")
    detail = escape(error.detail)
    if isinstance(error, FabroUnavailable):
        if error.timed_out_after is not None:
            return FABRO_TIMEOUT.format(seconds=f"{error.timed_out_after:g}", request_id=request_id)
        return FABRO_DOWN.format(detail=detail, request_id=request_id)
    if isinstance(error, FabroUnauthorized):
        return FABRO_UNAUTHORIZED.format(detail=detail, request_id=request_id)
    if isinstance(error, FabroNotFound) and selector is not None:
        return RUN_NOT_FOUND.format(selector=escape(selector), command=escape(command))
    if isinstance(error, FabroRejected) and selector is not None and error.status == 400:
        return f"`{escape(selector)}` matches more than one run or is not a run id: {detail}. Use more of the id."
    return FABRO_REJECTED.format(detail=detail, request_id=request_id)


def error_message(error: FabroError, *, command: str = "/runs", selector: str | None = None) -> Message:
    text = error_text(error, command=command, selector=selector)
    return {"text": _plain(text), "blocks": [kit.section(f":warning: {text}", block_id="error")]}


def internal_error_message(reference: str) -> Message:
    text = INTERNAL_ERROR.format(reference=escape(reference))
    return {"text": _plain(text), "blocks": [kit.section(f":warning: {text}", block_id="error")]}


def _plain(text: str) -> str:
    return text.replace("`", "")
