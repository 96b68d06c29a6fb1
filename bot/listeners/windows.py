"""The windows a click opens: looked up in Fabro briefly (the trigger expires 3 s after the click), then opened."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.controls import answer_modal, close_modal, deny_modal, merge_confirm_view, merge_modal, steer_modal
from bot.blocks.inspect import ask_modal
from bot.blocks.routing import ModalContext, Target, encode_modal
from bot.core.errors import NotOpened
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroError
from bot.fabro.models import Question, Run
from bot.listeners.clicks import OpenWindow, Window
from bot.slack.webapi import TRANSPORT_ERRORS

__all__ = ["confirm_merge", "open_window"]

_LOOKUP_SECONDS = 2.0  # trigger_id expires 3 s after the click: views.open must come first


async def open_window(client: AsyncWebClient, fabro: FabroClient, click: OpenWindow) -> None:
    """Open the window `click` asks for, showing what Fabro says of the run (or only its id, if Fabro is slow)."""
    target, metadata = click.target, encode_modal(click.context)
    run, question = await _lookup(fabro, target, with_question=click.window is Window.ANSWER)
    shown = run or Run(id=target.run_id)
    view: dict[str, Any]
    match click.window:
        case Window.ANSWER:
            if run is None or question is None:
                question = Question(id=target.question_id or "?", text="Your answer to the run's question")
            view = answer_modal(shown, question, metadata=metadata)
        case Window.DENY:
            view = deny_modal(shown, metadata=metadata)
        case Window.MERGE:
            view = merge_modal(shown, metadata=metadata)
        case Window.CLOSE:
            view = close_modal(shown, metadata=metadata)
        case Window.STEER:
            view = steer_modal(shown, metadata=metadata)
        case Window.ASK:
            view = ask_modal(shown, metadata=metadata)
    try:
        await client.views_open(trigger_id=click.trigger_id, view=view)
    except TRANSPORT_ERRORS as exc:  # e.g. an expired trigger_id
        raise NotOpened(type(exc).__name__) from exc


async def confirm_merge(fabro: FabroClient, context: ModalContext) -> dict[str, Any]:
    """Step two of a merge: the run and its pull request's live state, if Fabro answers in time."""
    assert context.method is not None
    try:
        async with asyncio.timeout(_LOOKUP_SECONDS):
            run = await fabro.get_run(context.target.run_id)
            pr = await fabro.pull_request(run.id)
    except (FabroError, TimeoutError):  # shown without them: the final Submit re-reads everything
        run, pr = Run(id=context.target.run_id), None
    return merge_confirm_view(run, pr, context.method, metadata=encode_modal(context))


async def _lookup(fabro: FabroClient, target: Target, *, with_question: bool) -> tuple[Run | None, Question | None]:
    try:
        async with asyncio.timeout(_LOOKUP_SECONDS):
            run = await fabro.get_run(target.run_id)
            if not with_question or target.question_id is None:
                return run, None
            questions = await fabro.list_questions(run.id)
            return run, next((q for q in questions if q.id == target.question_id), None)
    except (FabroError, TimeoutError):
        return None, None
