"""Mentions in a run's thread (the thread of an alert, a live card, or any message of the bot that
names its run): words answer the run's question when one waits, as Fabro's own integration allows;
`@fabro-runs steer <words>` says the words to the run's agent (never a late "yes"); `@fabro-runs ask
<words>`, or words when no question waits, ask Fabro about the run, answered in the thread. A digest
names many runs: a reply there never picks one, it asks which (`@fabro-runs 2 yes`, `2 steer …`,
`2 ask …`). Words reach Fabro
as the person typed them, not as Slack's markup; other apps' messages never steer, answer or ask."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.acting.interview import AnswerKind, Choice
from bot.acting.steering import Steering, Where
from bot.asking.ask import AskDesk
from bot.blocks.alerts import metadata_run
from bot.blocks.routing import Target
from bot.blocks.text import BOT_MENTION
from bot.core.keys import AlertKind
from bot.core.markup import mentioned_users, plain_text
from bot.core.records import Alert
from bot.listeners.boundary import Failed, attempt
from bot.listeners.clicks import intent_of
from bot.listeners.payloads import text
from bot.listeners.showing import Shower, retried_twice
from bot.slack.clients import DisplayNames
from bot.slack.webapi import TRANSPORT_ERRORS
from bot.store.base import AlertLog, Follows

__all__ = ["WHICH_RUN", "register"]

log = logging.getLogger(__name__)

_LEADING_MENTION = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^<>]*)?>[:,]?\s*")
_NUMBERED = re.compile(r"^#?(\d{1,2})[.:)]?\s+(.*)$", re.DOTALL)
_CHOOSER_RUNS = 10  # runs named in a chooser; more are reached by their own alert's thread or card
WHICH_RUN = "This message is about several runs, so nothing was sent. Say which one, by its number:"
_STEER_WORD = re.compile(r"^steer\b[:,]?\s*(.*)$", re.IGNORECASE | re.DOTALL)
_ASK_WORD = re.compile(r"^ask\b[:,]?\s*(.*)$", re.IGNORECASE | re.DOTALL)


class MentionStore(AlertLog, Follows, Protocol):
    """What a mention looks up: the alert or the live card whose thread it is in."""


T = TypeVar("T")


class Act(Protocol):
    """`Controls.act`: do the work through the error boundary, counted."""

    def __call__(self, label: str, work: Awaitable[T], /) -> Awaitable[T | Failed]: ...


async def _run_of_thread(client: AsyncWebClient, channel: str, thread: str) -> str | None:
    """The run a thread's first message names in its metadata, if the bot posted it; else None."""
    try:
        answer = await client.conversations_replies(channel=channel, ts=thread, limit=1, include_all_metadata=True)
        me = (await client.auth_test()).get("bot_id")
    except TRANSPORT_ERRORS as exc:
        log.info("could not read the first message of a thread in %s: %s", channel, type(exc).__name__)
        return None
    first = next(iter(answer.get("messages") or []), None)
    if not isinstance(first, dict) or text(first.get("ts")) != thread or not me or first.get("bot_id") != me:
        return None
    return metadata_run(first)


AskForWork = Callable[[AsyncWebClient, dict[str, Any], dict[str, Any]], Awaitable[None]]


def register(  # noqa: C901 - one branch per kind of thread, on purpose: read top to bottom
    app: AsyncApp,
    steering: Steering,
    store: MentionStore,
    shower: Shower,
    act: Act,
    *,
    asker: AskDesk | None = None,
    ask_for_work: AskForWork | None = None,
) -> None:
    names = DisplayNames(app.client)

    async def typed(markup: str) -> str:
        """The words after the bot's name, as the person saw them (Fabro and the agent read plain text)."""
        markup = _LEADING_MENTION.sub("", markup, count=1)
        return plain_text(markup, await names.of(mentioned_users(markup))).strip()

    async def tell(who: Where, sentence: str) -> None:
        try:
            await app.client.chat_postEphemeral(
                channel=who.channel or "", user=who.user_id, thread_ts=who.message_ts, text=sentence
            )
        except TRANSPORT_ERRORS as exc:
            log.warning("could not tell user=%s: %s", who.user_id, type(exc).__name__)

    @app.event("app_mention")
    async def on_mention(  # noqa: C901 - one branch per kind of thread, read top to bottom
        event: dict[str, Any], body: dict[str, Any], request: AsyncBoltRequest, client: AsyncWebClient
    ) -> None:
        channel, thread, user = text(event.get("channel")), text(event.get("thread_ts")), text(event.get("user"))
        if not channel or not user:
            return
        if event.get("bot_id") or event.get("subtype") == "bot_message" or event.get("bot_profile"):
            return  # another app's words never steer, answer, ask or ask for work
        in_thread = bool(thread) and thread != event.get("ts")
        alerts = await store.alerts_at(channel, thread) if in_thread and thread else []
        followed = None if alerts or not in_thread or not thread else await store.follow_at(channel, thread)
        named = (
            None
            if alerts or followed is not None or asker is None or not in_thread or not thread
            else await _run_of_thread(client, channel, thread)
        )
        if not alerts and followed is None and named is None:
            # Not a run's thread: a request for work (at the top level, or in any other thread).
            if ask_for_work is not None:
                await ask_for_work(client, event, body)
            return
        assert thread is not None
        who = Where(user, channel, thread)
        words = await typed(text(event.get("text")) or "")
        order = _STEER_WORD.match(words)
        question = _ASK_WORD.match(words)
        # Slack re-sending an event it thinks was lost must neither act nor tell the person twice.
        retried = bool(request.headers.get("x-slack-retry-num"))
        intent = intent_of(text(body.get("event_id")) or text(event.get("ts")) or "")
        mention_ts = text(event.get("ts"))

        async def steer(run_id: str, said: str) -> None:
            work = steering.steer(Where(user, channel), Target(run_id), said, intent=intent)
            result = await act("steer", work)
            await shower.said_to_agent(result, who=who, message_ts=mention_ts, quiet=retried_twice(retried, result))

        async def ask(run_id: str, said: str) -> None:
            if asker is None or not said.strip():
                return
            result = await act("ask", asker.ask(user, run_id, channel, thread, said, intent))
            if isinstance(result, Failed) and not retried_twice(retried, result):
                await shower.show(result, who=Where(user, channel), thread_ts=thread)

        runs = list(dict.fromkeys(a.run_id for a in alerts))
        if len(runs) > 1:
            await _in_digest(alerts, runs, words, who, retried, steer, ask, tell, act, steering, shower, mention_ts)
            return
        run_id = alerts[0].run_id if alerts else followed.run_id if followed is not None else named
        assert run_id is not None
        if order is not None:
            await steer(run_id, order.group(1))
            return
        if question is not None:
            await ask(run_id, question.group(1))
            return
        if named is not None:
            await ask(named, words)
            return
        if followed is not None:
            looked = await attempt(steering.fabro.get_run(followed.run_id), what="reading a followed run")
            pending = None if isinstance(looked, Failed) else looked.current_question
            if pending is None:
                await ask(followed.run_id, words)
                return
            target = Target(followed.run_id, pending.id)
            answered = await act("answer", steering.answer(who, target, Choice(AnswerKind.REPLY, text=words)))
            quiet = retried_twice(retried, answered)
            await shower.said_to_agent(answered, who=who, message_ts=mention_ts, quiet=quiet)
            return
        question_alert = next((a for a in alerts if a.kind is AlertKind.QUESTION), None)
        if question_alert is None:
            await ask(run_id, words)
            return
        target = Target(question_alert.run_id, question_alert.key.question_id)
        result = await act("answer", steering.answer(who, target, Choice(AnswerKind.REPLY, text=words)))
        await shower.show(result, who=who, thread_ts=thread, quiet=retried_twice(retried, result))


async def _in_digest(
    alerts: list[Alert],
    runs: list[str],
    words: str,
    who: Where,
    retried: bool,
    steer: Callable[[str, str], Awaitable[None]],
    ask: Callable[[str, str], Awaitable[None]],
    tell: Callable[[Where, str], Awaitable[None]],
    act: Act,
    steering: Steering,
    shower: Shower,
    mention_ts: str | None,
) -> None:
    """A reply to a message naming several runs acts only on the run its number names; the digest
    itself is never redrawn as one run's card."""
    numbered = _NUMBERED.match(words)
    chosen = int(numbered.group(1)) if numbered else 0
    if numbered is None or not 1 <= chosen <= min(len(runs), _CHOOSER_RUNS):
        if not retried:
            await tell(who, _chooser(runs))
        return
    run_id, rest = runs[chosen - 1], numbered.group(2).strip()
    order = _STEER_WORD.match(rest)
    if order is not None:
        await steer(run_id, order.group(1))
        return
    asked = _ASK_WORD.match(rest)
    if asked is not None:  # a question for Fabro about that run, answered in the digest's thread
        await ask(run_id, asked.group(1))
        return
    question = next((a for a in alerts if a.run_id == run_id and a.kind is AlertKind.QUESTION), None)
    if question is None:
        if not retried:
            await tell(who, f"Run `{run_id}` has no question waiting here, so nothing was sent.")
        return
    # Acted on apart from the digest message: its outcome is told in the thread, the digest stays.
    apart = Where(who.user_id, who.channel)
    target = Target(run_id, question.key.question_id)
    result = await act("answer", steering.answer(apart, target, Choice(AnswerKind.REPLY, text=rest)))
    await shower.said_to_agent(result, who=who, message_ts=mention_ts, quiet=retried_twice(retried, result))


def _chooser(runs: list[str]) -> str:
    lines = [f"{i}. `{run_id}`" for i, run_id in enumerate(runs[:_CHOOSER_RUNS], start=1)]
    more = f"\n…and {len(runs) - _CHOOSER_RUNS} more: reply on their own alerts" if len(runs) > _CHOOSER_RUNS else ""
    return (
        f"{WHICH_RUN}\n"
        + "\n".join(lines)
        + f"{more}\nFor example `{BOT_MENTION} 2 yes`, `{BOT_MENTION} 2 steer <words>`"
        + f" or `{BOT_MENTION} 2 ask <question>`."
    )
