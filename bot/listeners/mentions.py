"""Mentions in a thread the bot started: `@Fabro yes` answers an alert's question, as Fabro's own
integration allows; `@Fabro steer <words>` says the words to the run's agent (never a late "yes");
in a live card's thread, words answer the run's question when it waits for one, else reach its agent."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltRequest

from bot.acting.interview import AnswerKind, Choice
from bot.acting.steering import Steering, Where
from bot.blocks.routing import Target
from bot.core.errors import Settled
from bot.core.keys import AlertKind
from bot.listeners.boundary import Failed, attempt
from bot.listeners.clicks import intent_of
from bot.listeners.payloads import text
from bot.listeners.showing import Shower, retried_twice
from bot.store.base import Store

__all__ = ["register"]

_MENTION = re.compile(r"<@[UW][A-Z0-9]+>")
_STEER_WORD = re.compile(r"^steer\b[:,]?\s*(.*)$", re.IGNORECASE | re.DOTALL)

Act = Callable[[str, Awaitable[Settled]], Awaitable["Settled | Failed"]]


def register(app: AsyncApp, steering: Steering, store: Store, shower: Shower, act: Act) -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], body: dict[str, Any], request: AsyncBoltRequest) -> None:
        channel, thread, user = text(event.get("channel")), text(event.get("thread_ts")), text(event.get("user"))
        if not channel or not thread or not user or thread == event.get("ts"):
            return
        alerts = await store.alerts_at(channel, thread)
        followed = None if alerts else await store.follow_at(channel, thread)
        if not alerts and followed is None:
            return
        who = Where(user, channel, thread)
        words = _MENTION.sub("", text(event.get("text")) or "").strip()
        order = _STEER_WORD.match(words)
        # Slack re-sending an event it thinks was lost must neither act nor tell the person twice.
        retried = bool(request.headers.get("x-slack-retry-num"))
        intent = intent_of(text(body.get("event_id")) or text(event.get("ts")) or "")
        mention_ts = text(event.get("ts"))

        async def steer(run_id: str, said: str) -> None:
            work = steering.steer(Where(user, channel), Target(run_id), said, intent=intent)
            result = await act("steer", work)
            await shower.said_to_agent(result, who=who, message_ts=mention_ts, quiet=retried_twice(retried, result))

        if followed is not None:
            pending = None
            if order is None:
                looked = await attempt(steering.fabro.get_run(followed.run_id), what="reading a followed run")
                pending = None if isinstance(looked, Failed) else looked.current_question
            if pending is None:
                await steer(followed.run_id, order.group(1) if order is not None else words)
                return
            target = Target(followed.run_id, pending.id)
            answered = await act("answer", steering.answer(who, target, Choice(AnswerKind.REPLY, text=words)))
            quiet = retried_twice(retried, answered)
            await shower.said_to_agent(answered, who=who, message_ts=mention_ts, quiet=quiet)
            return
        if order is not None:
            await steer(alerts[0].run_id, order.group(1))
            return
        question_alert = next((a for a in alerts if a.kind is AlertKind.QUESTION), None)
        if question_alert is None:
            return
        target = Target(question_alert.run_id, question_alert.key.question_id)
        result = await act("answer", steering.answer(who, target, Choice(AnswerKind.REPLY, text=words)))
        await shower.show(result, who=who, thread_ts=thread, quiet=retried_twice(retried, result))
