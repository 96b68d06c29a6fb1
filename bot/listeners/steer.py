"""Buttons, menus, modals and thread replies that act on runs.

Each listener acknowledges first (Slack allows three seconds), then lets `Steering`
decide and act, then shows the result: the card the person acted on is replaced in
place, and anything only they need to know comes as an ephemeral note.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.actions import (
    ANSWER_MODAL,
    DENY_MODAL,
    STEER_ACTION,
    ModalContext,
    Target,
    decode_modal,
    encode_modal,
    parse_control_block,
    steer_verb,
)
from bot.blocks.controls import ANSWER_INPUT, DENY_INPUT, answer_modal, deny_modal
from bot.blocks.replies import INTERNAL_ERROR
from bot.fabro.errors import FabroError
from bot.fabro.models import Question, Run
from bot.metrics import Metrics
from bot.steering import Choice, Result, Steering, Where
from bot.store.base import Store

__all__ = ["STALE_CONTROL", "register"]

log = logging.getLogger(__name__)

STALE_CONTROL = "That control no longer works. Show the run again with `/runs <run-id>`."
_MODAL_LOOKUP_SECONDS = 2.0   # trigger_id expires 3 s after the click: views.open must come first
_MENTION = re.compile(r"<@[UW][A-Z0-9]+>")


def register(app: AsyncApp, steering: Steering, store: Store, metrics: Metrics) -> None:
    def counted(verb: str, result: Result) -> Result:
        metrics.actions.labels(verb, result.status).inc()
        return result

    @app.action(STEER_ACTION)
    async def on_control(ack: AsyncAck, body: dict, respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        verb = steer_verb(action.get("action_id"))
        if verb == "pick":
            return  # ticking a checkbox only changes the message's state; Submit reads it
        parsed = parse_control_block(action.get("block_id"))
        if verb is None or parsed is None:
            await _notice(respond, STALE_CONTROL)
            return
        _, target = parsed
        who = _where(body)
        if verb in ("text", "deny"):
            try:
                if verb == "text":
                    await _open_answer_modal(client, steering, body, target)
                else:
                    await _open_deny_modal(client, steering, body, target)
            except Exception as exc:  # noqa: BLE001 - e.g. an expired trigger_id
                log.warning("could not open the %s window for user=%s: %s", verb, who.user_id, type(exc).__name__)
                await _notice(respond, "The window could not be opened in time. Please click again.")
            return
        result = counted(verb, await _guard(_dispatch(steering, verb, who, target, action, body)))
        await _show(result, who=who, respond=respond, client=client)

    @app.view(ANSWER_MODAL)
    async def on_answer_modal(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient) -> None:
        text = _input(view, ANSWER_INPUT)
        if not text.strip():
            await ack(response_action="errors", errors={ANSWER_INPUT: "Write an answer, or close this window."})
            return
        await ack()
        context = decode_modal(view.get("private_metadata"))
        user = (body.get("user") or {}).get("id", "")
        if context is None or context.target.question_id is None:
            log.warning("undecodable answer modal metadata from user=%s", user)
            return
        who = Where(user, context.channel, context.message_ts)
        result = counted("answer", await _guard(steering.answer(who, context.target, Choice("text", text=text))))
        await _show(result, who=who, client=client, response_url=context.response_url)

    @app.view(DENY_MODAL)
    async def on_deny_modal(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient) -> None:
        await ack()
        context = decode_modal(view.get("private_metadata"))
        user = (body.get("user") or {}).get("id", "")
        if context is None:
            log.warning("undecodable deny modal metadata from user=%s", user)
            return
        who = Where(user, context.channel, context.message_ts)
        result = counted("deny", await _guard(steering.deny(who, context.target, _input(view, DENY_INPUT) or None)))
        await _show(result, who=who, client=client, response_url=context.response_url)

    @app.event("app_mention")
    async def on_mention(event: dict, client: AsyncWebClient) -> None:
        """`@Fabro yes` in an alert's thread answers its question, as Fabro's own integration allows."""
        channel, thread, user = event.get("channel"), event.get("thread_ts"), event.get("user")
        if not channel or not thread or not user or thread == event.get("ts"):
            return
        question_alert = next(
            (a for a in await store.alerts_at(channel, thread) if a.kind == "question"), None
        )
        if question_alert is None:
            return
        _, run_id, question_id = question_alert.key.split(":", 2)
        who = Where(user, channel, thread)
        words = _MENTION.sub("", event.get("text") or "").strip()
        result = counted("answer", await _guard(steering.answer(who, Target(run_id, question_id), Choice("reply", text=words))))
        await _show(result, who=who, client=client, thread_ts=thread)


async def _dispatch(steering: Steering, verb: str, who: Where, target: Target, action: dict, body: dict) -> Result:
    if verb == "answer":
        value = action.get("value") or ""
        choice = Choice(value) if value in ("yes", "no") else Choice("option", (value,))
        return await steering.answer(who, target, choice)
    if verb == "choose":
        selected = (action.get("selected_option") or {}).get("value")
        return await steering.answer(who, target, Choice("option", (selected,) if selected else ()))
    if verb == "submit":
        picked = _picked(body, action.get("block_id"))
        if not picked:
            return Result(notice="Tick at least one option, then press Submit.", status="invalid")
        return await steering.answer(who, target, Choice("options", tuple(picked)))
    if verb == "approve":
        return await steering.approve(who, target)
    if verb == "retry":
        return await steering.retry(who, target)
    if verb == "cancel":
        return await steering.cancel(who, target)
    return Result(notice=STALE_CONTROL, status="invalid")


def _picked(body: dict, block_id: str | None) -> list[str]:
    """The ticked options of the checkboxes (or multi-select) beside the Submit button."""
    values = ((body.get("state") or {}).get("values") or {}).get(block_id or "") or {}
    for element in values.values():
        options = element.get("selected_options")
        if isinstance(options, list):
            return [str(o.get("value")) for o in options if isinstance(o, dict) and o.get("value")]
    return []


def _where(body: dict) -> Where:
    container = body.get("container") or {}
    user = (body.get("user") or {}).get("id", "")
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    editable = container.get("type") == "message" and not container.get("is_ephemeral")
    return Where(user, channel, container.get("message_ts") if editable else None)


def _input(view: dict, block: str) -> str:
    value = (((view.get("state") or {}).get("values") or {}).get(block) or {}).get(block) or {}
    return str(value.get("value") or "")


async def _guard(work: Any) -> Result:
    """Whatever goes wrong inside, the person gets a sentence and a reference, not silence."""
    try:
        return await work
    except Exception:
        reference = uuid.uuid4().hex[:12]
        log.exception("acting on a run failed, reference %s", reference)
        return Result(notice=INTERNAL_ERROR.format(reference=reference), status="failed")


async def _show(
    result: Result, *, who: Where, client: AsyncWebClient, respond: AsyncRespond | None = None,
    response_url: str | None = None, thread_ts: str | None = None,
) -> None:
    try:
        if result.card is not None:
            if who.channel and who.message_ts:
                await client.chat_update(channel=who.channel, ts=who.message_ts, text=result.card["text"], blocks=result.card["blocks"])
            elif respond is not None:
                await respond(replace_original=True, **result.card)
            elif response_url:
                await _post_to(client, response_url, {"replace_original": True, **result.card})
        if result.notice:
            if respond is not None:
                await _notice(respond, result.notice)
            elif who.channel:
                await client.chat_postEphemeral(
                    channel=who.channel, user=who.user_id, text=result.notice, thread_ts=thread_ts
                )
    except Exception as exc:  # noqa: BLE001 - the action itself is recorded; only showing it failed
        log.warning("could not show the result of an action to user=%s: %s", who.user_id, type(exc).__name__)


async def _notice(respond: AsyncRespond, text: str) -> None:
    await respond(response_type="ephemeral", replace_original=False, text=text.replace("*", ""),
                  blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": f":information_source: {text}"[:3000]}}])


async def _post_to(client: AsyncWebClient, url: str, payload: dict[str, Any]) -> None:
    from slack_sdk.webhook.async_client import AsyncWebhookClient

    await AsyncWebhookClient(url).send_dict(payload)


def _modal_context(body: dict, target: Target) -> str:
    who = _where(body)
    return encode_modal(ModalContext(target, who.channel, who.message_ts, None if who.message_ts else body.get("response_url")))


async def _lookup(steering: Steering, target: Target) -> tuple[Run | None, Question | None]:
    """The run and question for a modal, if Fabro answers in time (the modal must open within 3 s)."""
    try:
        async with asyncio.timeout(_MODAL_LOOKUP_SECONDS):
            run = await steering.fabro.get_run(target.run_id)
            if target.question_id is None:
                return run, None
            questions = await steering.fabro.list_questions(run.id)
            return run, next((q for q in questions if q.id == target.question_id), None)
    except (FabroError, TimeoutError):
        return None, None


async def _open_answer_modal(client: AsyncWebClient, steering: Steering, body: dict, target: Target) -> None:
    run, question = await _lookup(steering, target)
    if run is None or question is None:
        run = run or Run(id=target.run_id)
        question = question or Question(id=target.question_id or "?", text="Your answer to the run's question")
    await client.views_open(trigger_id=body.get("trigger_id"), view=answer_modal(run, question, metadata=_modal_context(body, target)))


async def _open_deny_modal(client: AsyncWebClient, steering: Steering, body: dict, target: Target) -> None:
    run, _ = await _lookup(steering, target)
    await client.views_open(trigger_id=body.get("trigger_id"), view=deny_modal(run or Run(id=target.run_id), metadata=_modal_context(body, target)))
