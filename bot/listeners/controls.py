"""Buttons, menus, modals and thread replies that act on runs.

Each listener acknowledges first (Slack allows three seconds), then lets `Steering`
decide and act through the boundary, then shows the result: the card the person acted
on is redrawn in place, and anything only they need to know comes as an ephemeral note.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.acting.interview import AnswerKind, Choice
from bot.acting.steering import Steering, Where
from bot.blocks.alerts import resolved_alert
from bot.blocks.controls import (
    ANSWER_INPUT,
    DENY_INPUT,
    INTERRUPT_INPUT,
    MERGE_INPUT,
    STEER_INPUT,
    answer_modal,
    deny_modal,
    merge_confirm_view,
    merge_modal,
    steer_modal,
)
from bot.blocks.outcomes import outcome_text
from bot.blocks.routing import (
    ANSWER_MODAL,
    DENY_MODAL,
    MERGE_CONFIRM,
    MERGE_METHODS,
    MERGE_MODAL,
    STEER_ACTION,
    STEER_MODAL,
    ModalContext,
    Target,
    decode_modal,
    encode_modal,
    parse_control_block,
    steer_verb,
)
from bot.core.errors import AlreadyActed, NotOpened, Refusal, Refused, Settled, Unreadable
from bot.core.keys import AlertKind, Verb
from bot.fabro.errors import FabroError
from bot.fabro.models import PullRequestState, Question, Run
from bot.listeners.boundary import Failed, attempt
from bot.listeners.payloads import first_action, obj, picked, picked_in, text, user_of, view_input, where_clicked
from bot.metrics import Metrics
from bot.store.base import Store
from bot.telling.home import Home

__all__ = ["register"]

log = logging.getLogger(__name__)

_MODAL_LOOKUP_SECONDS = 2.0  # trigger_id expires 3 s after the click: views.open must come first
_MENTION = re.compile(r"<@[UW][A-Z0-9]+>")
_STEER_WORD = re.compile(r"^steer\b[:,]?\s*(.*)$", re.IGNORECASE | re.DOTALL)
_SLACK_TRANSPORT_ERRORS = (SlackApiError, aiohttp.ClientError, TimeoutError)


@dataclass
class _Shower:
    """Shows what became of an action: the clicked card redrawn, and a note to the person."""

    client: AsyncWebClient
    clock: Callable[[], datetime]
    web_base: str | None
    command: str
    response_url_allowed: Callable[[str], bool]
    home: Home | None = None  # acted on from the Home tab: it is republished, with the note on top

    async def show(
        self,
        result: Settled | Failed,
        *,
        who: Where,
        respond: AsyncRespond | None = None,
        response_url: str | None = None,
        thread_ts: str | None = None,
        quiet: bool = False,
    ) -> None:
        settled = result if isinstance(result, Settled) else result.settled
        note = result.message if isinstance(result, Failed) and not quiet else None
        try:
            if settled is not None:
                card = resolved_alert(
                    settled.run, outcome=outcome_text(settled.outcome), now=self.clock(), web_base=self.web_base
                )
                if who.channel and who.message_ts:
                    await self.client.chat_update(
                        channel=who.channel, ts=who.message_ts, text=card["text"], blocks=card["blocks"]
                    )
                elif respond is not None:
                    await respond(replace_original=True, **card)
                elif response_url and self.response_url_allowed(response_url):
                    await AsyncWebhookClient(response_url).send_dict({"replace_original": True, **card})
            if note is not None:
                if respond is not None:
                    await respond(response_type="ephemeral", replace_original=False, **note)
                elif who.channel:
                    await self.client.chat_postEphemeral(
                        channel=who.channel, user=who.user_id, thread_ts=thread_ts, **note
                    )
            if self.home is not None and who.user_id and not who.channel and respond is None and not response_url:
                # Clicked in the Home tab: Home itself shows what happened.
                said = note["text"] if note else outcome_text(settled.outcome) if settled else None
                await self.home.publish(self.client, who.user_id, notice=said)
        except _SLACK_TRANSPORT_ERRORS as exc:
            # The action itself is recorded; only showing it failed.
            log.warning("could not show the result of an action to user=%s: %s", who.user_id, type(exc).__name__)

    async def said_to_agent(
        self, result: Settled | Failed, *, who: Where, message_ts: str | None, quiet: bool = False
    ) -> None:
        """A steer from a thread: a reaction on the person's message and a reply the thread can read,
        or, when it was not sent, a note to that person alone. The alert itself is left as it is."""
        if quiet or not who.channel:
            return
        try:
            if isinstance(result, Failed):
                await self.client.chat_postEphemeral(
                    channel=who.channel, user=who.user_id, thread_ts=who.message_ts, **result.message
                )
                return
            if message_ts:
                await self.client.reactions_add(channel=who.channel, timestamp=message_ts, name="arrow_right_hook")
            said = outcome_text(result.outcome)
            await self.client.chat_postMessage(
                channel=who.channel, thread_ts=who.message_ts, text=said.replace("*", ""), unfurl_links=False
            )
        except _SLACK_TRANSPORT_ERRORS as exc:
            log.warning("could not confirm a steer to user=%s: %s", who.user_id, type(exc).__name__)


def register(
    app: AsyncApp,
    steering: Steering,
    store: Store,
    metrics: Metrics,
    *,
    command: str,
    response_url_allowed: Callable[[str], bool],
    home: Home | None = None,
) -> None:
    shower = _Shower(app.client, steering.clock, steering.web_base, command, response_url_allowed, home)

    async def act(verb: str, work: Awaitable[Settled]) -> Settled | Failed:
        result = await attempt(work, what=f"{verb} from Slack", command=command)
        metrics.actions.labels(verb, result.status if isinstance(result, Failed) else "done").inc()
        return result

    @app.action(STEER_ACTION)
    async def on_control(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        action = first_action(body)
        verb = steer_verb(text(action.get("action_id")))
        if verb == "pick":
            return  # ticking a checkbox only changes the message's state; Submit reads it
        parsed = parse_control_block(text(action.get("block_id")))
        user = user_of(body)
        if verb is None or parsed is None or user is None:
            await shower.show(
                await act(verb or "unknown", _raise(Unreadable("control"))), who=Where(user or ""), respond=respond
            )
            return
        _, target = parsed
        channel, message_ts = where_clicked(body)
        who = Where(user, channel, message_ts)
        if verb == "create_pr":
            await _create_pull_request(act, shower, steering, who, target, respond)
            return
        if verb in ("text", "deny", "merge", "steer_text"):
            opener = {
                "text": _open_answer_modal,
                "deny": _open_deny_modal,
                "merge": _open_merge_modal,
                "steer_text": _open_steer_modal,
            }[verb]
            opened = await attempt(opener(client, steering, body, target), what=f"opening the {verb} window")
            if isinstance(opened, Failed):
                await respond(response_type="ephemeral", replace_original=False, **opened.message)
            return
        in_home = obj(body.get("container")).get("type") == "view"  # Home has no response_url
        await shower.show(
            await act(verb, _dispatch(steering, verb, who, target, action, body)),
            who=who,
            respond=None if in_home else respond,
        )

    _register_modals(app, steering, shower, act)
    _register_mentions(app, steering, store, shower, act)


Act = Callable[[str, Awaitable[Settled]], Awaitable["Settled | Failed"]]


def _register_modals(app: AsyncApp, steering: Steering, shower: _Shower, act: Act) -> None:
    """The windows a click opens: a written answer, a denial's reason, and the two steps of a merge."""

    @app.view(ANSWER_MODAL)
    async def on_answer_modal(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        answer = view_input(obj(view), ANSWER_INPUT)
        if not answer.strip():
            await ack(response_action="errors", errors={ANSWER_INPUT: "Write an answer, or close this window."})
            return
        await ack()
        context = decode_modal(text(obj(view).get("private_metadata")))
        user = user_of(body)
        if context is None or context.target.question_id is None or user is None:
            log.warning("undecodable answer modal metadata from user=%s", user)
            return
        who = Where(user, context.channel, context.message_ts)
        work = steering.answer(who, context.target, Choice(AnswerKind.TEXT, text=answer))
        await shower.show(await act("answer", work), who=who, response_url=context.response_url)

    @app.view(DENY_MODAL)
    async def on_deny_modal(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        context = decode_modal(text(obj(view).get("private_metadata")))
        user = user_of(body)
        if context is None or user is None:
            log.warning("undecodable deny modal metadata from user=%s", user)
            return
        who = Where(user, context.channel, context.message_ts)
        work = steering.deny(who, context.target, view_input(obj(view), DENY_INPUT) or None)
        await shower.show(await act("deny", work), who=who, response_url=context.response_url)

    @app.view(STEER_MODAL)
    async def on_steer_modal(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        said = view_input(obj(view), STEER_INPUT)
        if not said.strip():
            await ack(response_action="errors", errors={STEER_INPUT: "Write what the agent should do."})
            return
        await ack()
        context = decode_modal(text(obj(view).get("private_metadata")))
        user = user_of(body)
        intent = (text(obj(view).get("id")) or "").encode().hex()[:40]
        if context is None or user is None or not intent:
            log.warning("undecodable steer window from user=%s", user)
            return
        who = Where(user, context.channel, context.message_ts)
        interrupt = bool(picked_in(obj(view), INTERRUPT_INPUT))
        work = steering.steer(who, context.target, said, intent=intent, interrupt=interrupt)
        await shower.show(await act("steer", work), who=who, response_url=context.response_url)

    @app.view(MERGE_MODAL)
    async def on_merge_modal(ack: AsyncAck, view: dict[str, Any]) -> None:
        """Step two of a merge: show what will be merged and how, before the final submit."""
        context = decode_modal(text(obj(view).get("private_metadata")))
        method = _picked_method(obj(view))
        if context is None or method is None:
            await ack(response_action="errors", errors={MERGE_INPUT: "Choose how to merge."})
            return
        run, pr = await _pull_request_now(steering, context.target)
        metadata = encode_modal(replace(context, method=method))
        await ack(response_action="update", view=merge_confirm_view(run, pr, method, metadata=metadata))

    @app.view(MERGE_CONFIRM)
    async def on_merge_confirm(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        context = decode_modal(text(obj(view).get("private_metadata")))
        user = user_of(body)
        if context is None or context.method is None or user is None:
            log.warning("undecodable merge confirmation from user=%s", user)
            return
        who = Where(user, context.channel, context.message_ts)
        work = steering.merge_pull_request(who, context.target, context.method)
        await shower.show(await act("merge_pr", work), who=who, response_url=context.response_url)


def _register_mentions(app: AsyncApp, steering: Steering, store: Store, shower: _Shower, act: Act) -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], body: dict[str, Any], request: AsyncBoltRequest) -> None:
        """In an alert's thread: `@Fabro yes` answers its question, as Fabro's own integration allows;
        `@Fabro steer <words>` says the words to the run's agent (never a late "yes")."""
        channel, thread, user = text(event.get("channel")), text(event.get("thread_ts")), text(event.get("user"))
        if not channel or not thread or not user or thread == event.get("ts"):
            return
        alerts = await store.alerts_at(channel, thread)
        followed = None if alerts else await store.follow_at(channel, thread)
        if not alerts and followed is None:
            return
        who = Where(user, channel, thread)
        words = _MENTION.sub("", text(event.get("text")) or "").strip()
        if followed is not None:
            # In a live card's thread: an answer when the run waits for one, else words for its agent.
            await _in_live_thread(act, shower, steering, followed.run_id, who, words, event, body, request)
            return
        # Slack re-sending an event it thinks was lost must neither act nor tell the person twice.
        retried = bool(request.headers.get("x-slack-retry-num"))
        order = _STEER_WORD.match(words)
        question_alert = next((a for a in alerts if a.kind is AlertKind.QUESTION), None)
        if order is not None:
            intent = (text(body.get("event_id")) or text(event.get("ts")) or "").encode().hex()[:40]
            work = steering.steer(Where(user, channel), Target(alerts[0].run_id), order.group(1), intent=intent)
            steered = await act("steer", work)
            quiet = retried and isinstance(steered, Failed) and steered.status == AlreadyActed.status
            await shower.said_to_agent(steered, who=who, message_ts=text(event.get("ts")), quiet=quiet)
            return
        if question_alert is None:
            return
        target = Target(question_alert.run_id, question_alert.key.question_id)
        result = await act("answer", steering.answer(who, target, Choice(AnswerKind.REPLY, text=words)))
        quiet = retried and isinstance(result, Failed) and result.status == AlreadyActed.status
        await shower.show(result, who=who, thread_ts=thread, quiet=quiet)


async def _in_live_thread(
    act: Act,
    shower: _Shower,
    steering: Steering,
    run_id: str,
    who: Where,
    words: str,
    event: dict[str, Any],
    body: dict[str, Any],
    request: AsyncBoltRequest,
) -> None:
    retried = bool(request.headers.get("x-slack-retry-num"))
    order = _STEER_WORD.match(words)
    pending = None
    if order is None:
        looked = await attempt(steering.fabro.get_run(run_id), what="reading a followed run")
        pending = None if isinstance(looked, Failed) else looked.current_question
    if pending is not None:
        target = Target(run_id, pending.id)
        answered = await act("answer", steering.answer(who, target, Choice(AnswerKind.REPLY, text=words)))
        quiet = retried and isinstance(answered, Failed) and answered.status == AlreadyActed.status
        await shower.said_to_agent(answered, who=who, message_ts=text(event.get("ts")), quiet=quiet)
        return
    intent = (text(body.get("event_id")) or text(event.get("ts")) or "").encode().hex()[:40]
    said = order.group(1) if order is not None else words
    work = steering.steer(Where(who.user_id, who.channel), Target(run_id), said, intent=intent)
    steered = await act("steer", work)
    quiet = retried and isinstance(steered, Failed) and steered.status == AlreadyActed.status
    await shower.said_to_agent(steered, who=who, message_ts=text(event.get("ts")), quiet=quiet)


async def _raise(error: Exception) -> Settled:
    raise error


async def _dispatch(
    steering: Steering, verb: str, who: Where, target: Target, action: dict[str, Any], body: dict[str, Any]
) -> Settled:
    value = text(action.get("value")) or ""
    match verb:
        case "answer":
            choice = Choice(AnswerKind(value)) if value in ("yes", "no") else Choice(AnswerKind.OPTION, (value,))
            return await steering.answer(who, target, choice)
        case "choose":
            selected = text(obj(action.get("selected_option")).get("value"))
            return await steering.answer(who, target, Choice(AnswerKind.OPTION, (selected,) if selected else ()))
        case "submit":
            ticked = picked(body, text(action.get("block_id")))
            if not ticked:
                raise Refused(Refusal.NOTHING_PICKED)
            return await steering.answer(who, target, Choice(AnswerKind.OPTIONS, tuple(ticked)))
        case "approve":
            return await steering.approve(who, target)
        case "retry":
            return await steering.retry(who, target)
        case "cancel":
            return await steering.cancel(who, target)
        case "close_pr":
            return await steering.close_pull_request(who, target)
        case "interrupt" | "pause" | "resume":
            # One click, one request: the click's own timestamp names it (Fabro refuses a second pending one).
            intent = (text(action.get("action_ts")) or "0").encode().hex()[:40]
            return await steering.control(who, target, Verb(verb), intent=intent)
    raise Unreadable("control")


def _modal_context(body: dict[str, Any], target: Target) -> str:
    channel, message_ts = where_clicked(body)
    response_url = None if message_ts else text(body.get("response_url"))
    return encode_modal(ModalContext(target, channel, message_ts, response_url))


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


async def _open(client: AsyncWebClient, body: dict[str, Any], view: dict[str, Any]) -> None:
    try:
        await client.views_open(trigger_id=text(body.get("trigger_id")) or "", view=view)
    except _SLACK_TRANSPORT_ERRORS as exc:  # e.g. an expired trigger_id
        raise NotOpened(type(exc).__name__) from exc


async def _open_answer_modal(client: AsyncWebClient, steering: Steering, body: dict[str, Any], target: Target) -> None:
    run, question = await _lookup(steering, target)
    if run is None or question is None:
        run = run or Run(id=target.run_id)
        question = question or Question(id=target.question_id or "?", text="Your answer to the run's question")
    await _open(client, body, answer_modal(run, question, metadata=_modal_context(body, target)))


async def _create_pull_request(
    act: Act,
    shower: _Shower,
    steering: Steering,
    who: Where,
    target: Target,
    respond: AsyncRespond,
) -> None:
    """Ask once; show "being written" at once; follow the creation in the background and show how it ended."""
    follow: dict[str, Any] = {}

    async def create() -> Settled:
        settled, follow["location"], follow["wait"] = await steering.create_pull_request(who, target)
        return settled

    result = await act("create_pr", create())
    await shower.show(result, who=who, respond=respond)
    if isinstance(result, Failed):
        return

    async def finish() -> None:
        work = steering.follow_creation(who, target.run_id, follow["location"], follow["wait"])
        await shower.show(await act("create_pr", work), who=who, respond=respond)

    task = asyncio.create_task(finish(), name=f"pull-request-{target.run_id}")
    _FOLLOWING.add(task)
    task.add_done_callback(_FOLLOWING.discard)


_FOLLOWING: set[asyncio.Task[None]] = set()  # creations being followed (kept, so they are not collected)


def _picked_method(view: dict[str, Any]) -> str | None:
    chosen = obj(obj(obj(obj(view.get("state")).get("values")).get(MERGE_INPUT)).get(MERGE_INPUT))
    value = text(obj(chosen.get("selected_option")).get("value"))
    return value if value in MERGE_METHODS else None


async def _pull_request_now(steering: Steering, target: Target) -> tuple[Run, PullRequestState | None]:
    """The run and its pull request's live state for the confirmation, if Fabro answers in time."""
    try:
        async with asyncio.timeout(_MODAL_LOOKUP_SECONDS):
            run = await steering.fabro.get_run(target.run_id)
            return run, await steering.fabro.pull_request(run.id)
    except (FabroError, TimeoutError):
        return Run(id=target.run_id), None


async def _open_steer_modal(client: AsyncWebClient, steering: Steering, body: dict[str, Any], target: Target) -> None:
    run, _ = await _lookup(steering, target)
    await _open(client, body, steer_modal(run or Run(id=target.run_id), metadata=_modal_context(body, target)))


async def _open_merge_modal(client: AsyncWebClient, steering: Steering, body: dict[str, Any], target: Target) -> None:
    run, _ = await _lookup(steering, target)
    await _open(client, body, merge_modal(run or Run(id=target.run_id), metadata=_modal_context(body, target)))


async def _open_deny_modal(client: AsyncWebClient, steering: Steering, body: dict[str, Any], target: Target) -> None:
    run, _ = await _lookup(steering, target)
    await _open(client, body, deny_modal(run or Run(id=target.run_id), metadata=_modal_context(body, target)))
