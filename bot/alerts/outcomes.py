"""What became of the thing an alert was about, in one line of mrkdwn.  [pure]

An alert is edited to this line when its run moves on: the question was answered (by
whom, with what), the approval decided, the failed run retried, superseded or archived.
Fabro's events say who did it; the run itself says what state it is in now.
"""

from __future__ import annotations

import re
from typing import Any

from bot.blocks.text import clip, escape, link
from bot.fabro.models import Run, RunEvent

__all__ = ["actor_name", "alert_key_of_action", "answer_text", "outcome_of", "retried_outcome", "run_state"]

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def actor_name(actor: dict[str, Any] | None) -> str | None:
    """Who a Fabro principal is, for people: a login, a Slack mention, or what kind of thing acted."""
    if not actor:
        return None
    kind = actor.get("kind")
    if kind == "user" and actor.get("login"):
        return escape(actor["login"])
    if kind == "slack":
        user_id = str(actor.get("user_id") or "")
        if _SLACK_USER.match(user_id):
            return f"<@{user_id}>"
        return escape(actor.get("user_name") or "someone in Slack")
    if kind == "worker" and actor.get("run_id"):
        return f"run `{escape(actor['run_id'])}`"
    if kind == "system":
        return f"Fabro ({escape(actor.get('system_kind') or 'system')})"
    if kind == "webhook":
        return "a webhook"
    if kind == "agent":
        return escape(actor.get("name") or "an agent")
    name = actor.get("login") or actor.get("name")
    return escape(name) if name else None


def answer_text(answer: Any, labels: dict[str, str] | None = None) -> str | None:
    """Fabro's tagged answer body as people would say it."""
    if not isinstance(answer, dict):
        return escape(clip(str(answer), 200)) if answer else None
    labels = labels or {}
    kind = answer.get("kind")
    if kind in ("yes", "no"):
        return kind.capitalize()
    if kind == "selected":
        key = str(answer.get("option_key") or "")
        return escape(clip(labels.get(key, key), 200))
    if kind == "multi_selected":
        keys = [str(k) for k in answer.get("option_keys") or []]
        return escape(clip(", ".join(labels.get(k, k) for k in keys), 300))
    if kind == "text":
        return f"“{escape(clip(str(answer.get('text') or ''), 300))}”"
    return None


def _by(event: RunEvent) -> str:
    who = actor_name(event.actor)
    return f" by {who}" if who else ""


def _latest(events: list[RunEvent], names: set[str], question_id: str | None = None) -> RunEvent | None:
    for event in sorted(events, key=lambda e: e.seq or 0, reverse=True):
        if event.event in names and (question_id is None or event.properties.get("question_id") == question_id):
            return event
    return None


def run_state(run: Run) -> str:
    """`failed (workflow_error)`, `blocked (human_input_required)`, `running`: where a run is, unescaped."""
    status = run.status
    detail = status.reason or status.blocked_reason
    return f"{status.kind} ({detail})" if detail else status.kind


def outcome_of(kind: str, key: str, run: Run, events: list[RunEvent]) -> str:
    """Why an alert of `kind` about `run` no longer needs anyone."""
    if kind == "question":
        question_id = key.split(":", 2)[2] if key.count(":") >= 2 else None
        event = _latest(events, {"interview.completed", "interview.timeout", "interview.interrupted"}, question_id)
        if event is not None and event.event == "interview.completed":
            answer = answer_text(event.properties.get("answer"))
            return f"Answered{_by(event)}" + (f": {answer}" if answer else "")
        if event is not None and event.event == "interview.timeout":
            return "Timed out without an answer"
        if event is not None:
            return "Question withdrawn (interrupted)"
        return f"No longer waiting: the run is {escape(run_state(run))}"
    if kind == "approval":
        approval = run.lifecycle.approval
        decided = _latest(events, {"run.approved", "run.denied"})
        if approval is not None and approval.state == "approved" or decided is not None and decided.event == "run.approved":
            return f"Approved{_by(decided) if decided else ''}"
        if approval is not None and approval.state == "denied" or decided is not None and decided.event == "run.denied":
            reason = (approval.denial_reason if approval else None) or (decided.properties.get("reason") if decided else None)
            return f"Denied{_by(decided) if decided else ''}" + (f": {escape(clip(str(reason), 300))}" if reason else "")
        return f"No longer waiting for approval: the run is {escape(run_state(run))}"
    # failed
    if run.superseded_by:
        return f"Superseded by run `{escape(run.superseded_by)}`"
    if run.lifecycle.archived:
        archived = _latest(events, {"run.archived"})
        return f"Archived{_by(archived) if archived else ''}"
    return f"The run is now {escape(run_state(run))}"


def retried_outcome(new_run: Run, web_url: str | None) -> str:
    """A failed run was retried: point at the run that took its place."""
    return f"Retried → new run {link(web_url, new_run.id)}"


def alert_key_of_action(action_key: str) -> str | None:
    """The alert an action settles: answer:R:Q → question:R:Q, decide:R → approval:R, retry:R → failed:R."""
    verb, _, rest = action_key.partition(":")
    return {"answer": f"question:{rest}", "decide": f"approval:{rest}", "retry": f"failed:{rest}"}.get(verb)
