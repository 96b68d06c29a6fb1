"""Acting on runs from Slack: answer a question, approve or deny, retry, cancel.

Independent of Slack's transport (the listeners call it and deliver what it returns).
Every action goes the same way:

1. Permission: `ACTION_ALLOWLIST`, checked before anything else; nothing reaches Fabro otherwise.
2. Record: the action is stored under a key that allows it once (one answer per question,
   one decision per approval, one retry, one cancel), *before* it is sent. A double click
   or a second person finds the first action and is told about it.
3. Re-read: the run (and its questions) from Fabro. Card values are not trusted: the
   question must still be pending, the option must exist, the run must allow the action.
4. Send, once (a 503 from Fabro is retried once, except for retry, which creates runs).
5. Settle: the record gets the outcome; the clicked card and every alert about the same
   thing show who did what and when. Fabro records the bot's token as the actor, so this
   record is the only place the Slack user is kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.actions import Target
from bot.interview import Choice, answer_body
from bot.alerts.outcomes import alert_key_of_action, answer_text, outcome_of, run_state
from bot.blocks.alerts import resolved_alert
from bot.blocks.replies import error_text
from bot.blocks.runs import run_web_url
from bot.blocks.text import clip, escape, link, slack_date
from bot.fabro.client import FabroClient
from bot.fabro.errors import FabroConflict, FabroError, FabroNotFound, FabroRejected, FabroUnavailable
from bot.fabro.models import Question, Run
from bot.permissions import Allowlist
from bot.store.base import Action, AlertState, Store

__all__ = ["Choice", "Result", "Steering", "Where"]

log = logging.getLogger(__name__)

Message = dict[str, Any]

NOT_ALLOWED = "You are not allowed to {what} from Slack here. Ask someone in ACTION_ALLOWLIST, or act in Fabro."
_WHAT = {"answer": "answer questions", "approve": "approve runs", "deny": "deny runs",
         "retry": "retry runs", "cancel": "cancel runs"}
_DOING = {"answer": "answering this question", "approve": "deciding on this approval", "deny": "deciding on this approval",
          "retry": "retrying this run", "cancel": "cancelling this run"}


@dataclass(frozen=True)
class Where:
    """Who acted, and on which card (a channel message can be edited; an ephemeral one cannot)."""

    user_id: str
    channel: str | None = None
    message_ts: str | None = None


@dataclass(frozen=True)
class Result:
    notice: str | None = None     # ephemeral, to the person who acted
    card: Message | None = None   # what the card they acted on should now show
    status: str = "done"          # done | refused | failed | not_allowed | duplicate | invalid


@dataclass
class Steering:
    store: Store
    fabro: FabroClient
    allowlist: Allowlist
    clock: Callable[[], datetime]
    web_base: str | None = None
    _send_retry_delay: float = field(default=0.5, repr=False)

    # -- the five actions -----------------------------------------------------------------

    async def answer(self, who: Where, target: Target, choice: Choice) -> Result:
        assert target.question_id is not None
        question_id = target.question_id
        state: dict[str, Any] = {}

        def check(run: Run, questions: list[Question]) -> str | None:
            question = next((q for q in questions if q.id == question_id), None)
            if question is None:
                return "This question is no longer waiting for an answer: it was answered or withdrawn."
            body = answer_body(question, choice)
            if isinstance(body, str):
                return body
            state["question"], state["body"] = question, body
            return None

        async def send(run: Run) -> tuple[str, Run]:
            question: Question = state["question"]
            await self._once_more_on_503(lambda: self.fabro.answer_question(run.id, question_id, state["body"]))
            labels = {o.key: o.label or o.key for o in question.options}
            said = answer_text(state["body"], labels)
            outcome = f"Answered *{clip(escape(question.text), 80)}* by <@{who.user_id}>" + (f": {said}" if said else "")
            return outcome, await self._fresh(run)

        return await self._act(who, "answer", f"answer:{target.run_id}:{question_id}", target, check, send,
                               detail={"choice": choice.kind}, with_questions=True)

    async def approve(self, who: Where, target: Target) -> Result:
        async def send(run: Run) -> tuple[str, Run]:
            after = await self._once_more_on_503(lambda: self.fabro.approve(run.id))
            return f"Approved by <@{who.user_id}>", after

        return await self._act(who, "approve", f"decide:{target.run_id}", target, _awaiting_approval, send)

    async def deny(self, who: Where, target: Target, reason: str | None) -> Result:
        reason = (reason or "").strip() or None

        async def send(run: Run) -> tuple[str, Run]:
            after = await self._once_more_on_503(lambda: self.fabro.deny(run.id, reason))
            return f"Denied by <@{who.user_id}>" + (f": {clip(escape(reason), 300)}" if reason else ""), after

        return await self._act(who, "deny", f"decide:{target.run_id}", target, _awaiting_approval, send,
                               detail={"reason": reason})

    async def retry(self, who: Where, target: Target) -> Result:
        def check(run: Run, _: list[Question]) -> str | None:
            if run.lifecycle.archived:
                return "This run is archived; archived runs cannot be retried."
            if not run.is_terminal:
                return f"Only finished runs can be retried; this one is {escape(run_state(run))}."
            return None

        async def send(run: Run) -> tuple[str, Run]:
            new = await self.fabro.retry(run.id)  # never repeated: a second call would make a second run
            return f"Retried by <@{who.user_id}> → new run {link(run_web_url(new, self.web_base), new.id)}", run

        return await self._act(who, "retry", f"retry:{target.run_id}", target, check, send)

    async def cancel(self, who: Where, target: Target) -> Result:
        def check(run: Run, _: list[Question]) -> str | None:
            if run.is_terminal or run.lifecycle.archived:
                return f"This run already finished ({escape(run_state(run))}); there is nothing to cancel."
            return None

        async def send(run: Run) -> tuple[str, Run]:
            after, done = await self._once_more_on_503(lambda: self.fabro.cancel(run.id))
            if done:
                return f"Cancelled by <@{who.user_id}>", after
            return f"Cancellation requested by <@{who.user_id}>; Fabro is stopping the run", after

        return await self._act(who, "cancel", f"cancel:{target.run_id}", target, check, send)

    # -- the one path every action takes ----------------------------------------------------

    async def _act(
        self,
        who: Where,
        verb: str,
        key: str,
        target: Target,
        check: Callable[[Run, list[Question]], str | None],
        send: Callable[[Run], Awaitable[tuple[str, Run]]],
        *,
        detail: dict[str, Any] | None = None,
        with_questions: bool = False,
    ) -> Result:
        if not await self.allowlist.allows(who.user_id):
            log.info("user=%s is not allowed to %s run=%s", who.user_id, verb, target.run_id)
            return Result(notice=NOT_ALLOWED.format(what=_WHAT[verb]), status="not_allowed")
        action = Action(key, target.run_id, verb, who.user_id, self.clock(), detail=json.dumps(detail or {}))
        earlier = await self.store.begin_action(action)
        if earlier is not None:
            return self._already(earlier)
        log.info("user=%s %s run=%s (%s)", who.user_id, verb, target.run_id, key)
        try:
            run = await self.fabro.get_run(target.run_id)
            questions = await self.fabro.list_questions(run.id) if with_questions else []
            problem = check(run, questions)
            if problem is not None:
                await self.store.finish_action(key, state="refused", result=problem)
                return Result(notice=problem, card=await self._current_card(run, key), status="refused")
            outcome, after = await send(run)
        except FabroConflict as exc:
            await self.store.finish_action(key, state="failed", result=f"409: {exc.detail}")
            card = await self._current_card_by_id(target.run_id, key)
            return Result(notice=f"Fabro says this can no longer be done ({escape(exc.detail.rstrip('.'))})"
                                 f" — request id `{escape(exc.request_id or 'none')}`."
                                 " Someone got there first; the card now shows where the run is.", card=card, status="failed")
        except FabroNotFound as exc:
            await self.store.finish_action(key, state="failed", result=f"404: {exc.detail}")
            return Result(notice=f"Fabro no longer knows run `{escape(target.run_id)}` (or it is not live on this server)"
                                 f" — request id `{escape(exc.request_id or 'none')}`.", status="failed")
        except FabroRejected as exc:
            await self.store.finish_action(key, state="failed", result=f"{exc.status}: {exc.detail}")
            return Result(notice=f"Fabro refused that: {escape(exc.detail)} — request id `{escape(exc.request_id or 'none')}`.",
                          status="failed")
        except FabroError as exc:
            await self.store.finish_action(key, state="failed", result=f"{exc.status or 'unavailable'}: {exc.detail}")
            return Result(notice=error_text(exc) + " Nothing was changed; try again.", status="failed")
        await self.store.finish_action(key, state="done", result=outcome)
        await self._settle_alerts(key, target.run_id, outcome, who)
        return Result(card=resolved_alert(after, outcome=outcome, now=self.clock(), web_base=self.web_base))

    async def _once_more_on_503(self, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except FabroUnavailable as exc:
            if exc.status != 503:
                raise
            log.info("fabro answered 503, trying once more (request_id=%s)", exc.request_id)
            await asyncio.sleep(self._send_retry_delay)
            return await call()

    def _already(self, earlier: Action) -> Result:
        if earlier.state == "done":
            return Result(notice=f"Already done: {earlier.result} · {slack_date(earlier.requested_at)}", status="duplicate")
        return Result(notice=f"<@{earlier.user_id}> is already {_DOING.get(earlier.action, 'acting on this run')}"
                             f" (since {slack_date(earlier.requested_at)}).", status="duplicate")

    async def _settle_alerts(self, action_key: str, run_id: str, outcome: str, who: Where) -> None:
        """Every posted alert about what was just done shows its outcome: the clicked one now,
        the others (other channels) on the alert cycle's next pass."""
        alert_key = alert_key_of_action(action_key)
        if alert_key is None:
            return
        for alert in await self.store.alerts_for_run(run_id):
            if alert.key != alert_key or alert.state is not AlertState.POSTED or alert.outcome is not None:
                continue
            if (alert.channel, alert.ts) == (who.channel, who.message_ts):
                await self.store.resolve_alert(alert.key, alert.channel, outcome, self.clock())
            else:
                await self.store.set_outcome(alert.key, alert.channel, outcome)

    async def _fresh(self, run: Run) -> Run:
        try:
            return await self.fabro.get_run(run.id)
        except FabroError:
            return run

    async def _current_card_by_id(self, run_id: str, key: str) -> Message | None:
        try:
            return await self._current_card(await self.fabro.get_run(run_id), key)
        except FabroError:
            return None

    async def _current_card(self, run: Run, action_key: str) -> Message | None:
        """The clicked card, brought up to date with what actually happened to its subject."""
        alert_key = alert_key_of_action(action_key)
        try:
            events = await self.fabro.recent_events(run.id)
        except FabroError:
            events = []
        kind = (alert_key or "run:").split(":", 1)[0]
        outcome = outcome_of(kind, alert_key or "", run, events) if kind in ("question", "approval", "failed") else f"The run is {escape(run_state(run))}"
        return resolved_alert(run, outcome=outcome, now=self.clock(), web_base=self.web_base)


def _awaiting_approval(run: Run, _: list[Question]) -> str | None:
    if run.awaits_approval:
        return None
    return f"This run is no longer waiting for approval: it is {escape(run_state(run))}."
