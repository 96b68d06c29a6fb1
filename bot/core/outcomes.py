"""What became of the thing an alert or a card was about, as data.  [pure]

An alert is edited when its run moves on: the question was answered (by whom, with what),
the approval decided, the failed run retried, superseded or archived. That is an
`Outcome`: stored as JSON with the alert and the action that caused it, and rendered into
words only where it is shown (`bot.blocks.outcomes`). Fabro's events say who acted in
Fabro; the bot's own action record says which Slack user acted through the bot (Fabro
only knows the bot's token).
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.core.keys import AlertKey, AlertKind
from bot.fabro.models import Run, RunEvent

__all__ = ["Outcome", "OutcomeVerb", "events_tell", "outcome_of", "principal", "run_state", "said"]


class OutcomeVerb(enum.StrEnum):
    ANSWERED = "answered"
    TIMED_OUT = "timed_out"
    WITHDRAWN = "withdrawn"
    APPROVED = "approved"
    DENIED = "denied"
    RETRIED = "retried"
    RESUMED = "resumed"  # the same run, again from its last checkpoint
    CANCELLED = "cancelled"
    CANCEL_REQUESTED = "cancel_requested"
    SUPERSEDED = "superseded"
    ARCHIVED = "archived"
    STEERED = "steered"  # `answer` is what was said to the agent
    INTERRUPTED = "interrupted"
    PAUSE_REQUESTED = "pause_requested"
    RESUME_REQUESTED = "resume_requested"
    STARTED = "started"  # `run_id` is the new run, `answer` the automation's name
    PR_REQUESTED = "pr_requested"  # Fabro is writing the pull request
    PR_OPENED = "pr_opened"
    PR_FAILED = "pr_failed"  # `reason` says why
    PR_MERGED = "pr_merged"  # `answer` holds the method
    PR_CLOSED = "pr_closed"
    MOVED_ON = "moved_on"  # nobody is needed any more; `state` says where the run is
    NOT_POSTED = "not_posted"  # the alert was no longer current when it could be posted
    LEGACY = "legacy"  # an outcome stored as rendered text by an earlier version


@dataclass(frozen=True)
class Outcome:
    verb: OutcomeVerb
    slack_user: str | None = None  # the Slack user who acted through the bot
    actor: dict[str, str] = field(default_factory=dict)  # the Fabro principal who acted, as Fabro sent it
    question: str | None = None  # the question's text, for answers
    answer: str | None = None  # as people would say it: labels, yes/no, or the text
    reason: str | None = None  # a denial's reason
    run_id: str | None = None  # the new run of a retry, the run that superseded this one, or a PR (`#7`)
    run_url: str | None = None  # and where it is
    state: str | None = None  # where the run is, for MOVED_ON
    subject: AlertKind | None = None  # what the outcome is about, for MOVED_ON's wording
    at: datetime | None = None
    text: str | None = None  # LEGACY only: mrkdwn as it was stored

    def by(self, slack_user: str | None) -> Outcome:
        """The same outcome, credited to the Slack user who did it through the bot."""
        return replace(self, slack_user=slack_user) if slack_user else self

    def dump(self) -> str:
        data: dict[str, Any] = {"v": 1}
        for name, value in asdict(self).items():
            if value in (None, {}):
                continue
            data[name] = (
                value.isoformat()
                if isinstance(value, datetime)
                else str(value)
                if name in ("verb", "subject")
                else value
            )
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def load(cls, text: str | None) -> Outcome | None:
        """The stored outcome; text that is not ours (a hand edit, a damaged row) is kept as legacy text."""
        if not text:
            return None
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("v") != 1:
                raise ValueError("not a stored outcome")
            actor = data.get("actor") or {}
            return cls(
                verb=OutcomeVerb(data["verb"]),
                slack_user=_text(data.get("slack_user")),
                actor={str(k): str(v) for k, v in actor.items()} if isinstance(actor, dict) else {},
                question=_text(data.get("question")),
                answer=_text(data.get("answer")),
                reason=_text(data.get("reason")),
                run_id=_text(data.get("run_id")),
                run_url=_text(data.get("run_url")),
                state=_text(data.get("state")),
                subject=AlertKind(data["subject"]) if data.get("subject") in AlertKind.__members__.values() else None,
                at=datetime.fromisoformat(data["at"]) if isinstance(data.get("at"), str) else None,
                text=_text(data.get("text")),
            )
        except (ValueError, KeyError, TypeError):
            return cls(OutcomeVerb.LEGACY, text=text)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def principal(actor: dict[str, Any] | None) -> dict[str, str]:
    """A Fabro principal reduced to the text fields that say who it is."""
    if not isinstance(actor, dict):
        return {}
    return {str(k): str(v) for k, v in actor.items() if isinstance(v, str | int) and not isinstance(v, bool)}


def said(answer: dict[str, Any], labels: dict[str, str] | None = None) -> str | None:
    """Fabro's tagged answer body as people would say it (as Fabro's `interview.completed` does)."""
    labels = labels or {}
    kind = answer.get("kind")
    if kind in ("yes", "no"):
        return str(kind)
    if kind == "selected":
        key = str(answer.get("option_key") or "")
        return labels.get(key, key)
    if kind == "multi_selected":
        return ", ".join(labels.get(str(k), str(k)) for k in answer.get("option_keys") or [])
    if kind == "text":
        return str(answer.get("text") or "") or None
    return None


def run_state(run: Run) -> str:
    """`failed (workflow_error)`, `blocked (human_input_required)`, `running`: where a run is."""
    status = run.status
    detail = status.reason or status.blocked_reason
    return f"{status.kind} ({detail})" if detail else status.kind


def _latest(events: list[RunEvent], names: set[str], question_id: str | None = None) -> RunEvent | None:
    for event in sorted(events, key=lambda e: e.seq or 0, reverse=True):
        if event.event in names and (question_id is None or event.properties.get("question_id") == question_id):
            return event
    return None


def _answer_of(event: RunEvent) -> str | None:
    # A display string since Fabro 0.333 (labels joined, yes/no, or the text).
    answer = event.properties.get("answer")
    return answer if isinstance(answer, str) and answer else None


def events_tell(keys: list[AlertKey], events: list[RunEvent]) -> bool:
    """Whether `events` hold what says how each alert's subject ended (who answered, who decided)."""
    for key in keys:
        if key.kind is AlertKind.QUESTION and _latest(events, _QUESTION_ENDS, key.question_id) is None:
            return False
        if key.kind is AlertKind.APPROVAL and _latest(events, {"run.approved", "run.denied"}) is None:
            return False
    return True


_QUESTION_ENDS = {"interview.completed", "interview.timeout", "interview.interrupted"}


def outcome_of(key: AlertKey, run: Run, events: list[RunEvent]) -> Outcome:
    """Why the alert `key` about `run` no longer needs anyone, from the run and its recent events.

    Fabro says who cancelled only as the bot's token user when it was done through the bot:
    the caller credits the Slack user from its own record (`Outcome.by`).
    """
    cancelled = run.status.kind == "failed" and run.status.reason == "cancelled"
    if cancelled and key.kind in (AlertKind.QUESTION, AlertKind.APPROVAL):
        return Outcome(OutcomeVerb.CANCELLED)
    if key.kind is AlertKind.QUESTION:
        event = _latest(events, _QUESTION_ENDS, key.question_id)
        if event is not None and event.event == "interview.completed":
            return Outcome(OutcomeVerb.ANSWERED, actor=principal(event.actor), answer=_answer_of(event), at=event.ts)
        if event is not None and event.event == "interview.timeout":
            return Outcome(OutcomeVerb.TIMED_OUT, at=event.ts)
        if event is not None:
            return Outcome(OutcomeVerb.WITHDRAWN, at=event.ts)
    if key.kind is AlertKind.APPROVAL:
        approval = run.lifecycle.approval
        decided = _latest(events, {"run.approved", "run.denied"})
        actor = principal(decided.actor) if decided else {}
        if (approval is not None and approval.state == "approved") or (decided and decided.event == "run.approved"):
            return Outcome(OutcomeVerb.APPROVED, actor=actor)
        if (approval is not None and approval.state == "denied") or (decided and decided.event == "run.denied"):
            reason = (approval.denial_reason if approval else None) or (
                decided.properties.get("reason") if decided else None
            )
            return Outcome(OutcomeVerb.DENIED, actor=actor, reason=_text(reason))
    if key.kind in (AlertKind.FAILED, AlertKind.CANCELLED, AlertKind.SUCCEEDED):
        if run.superseded_by:
            return Outcome(OutcomeVerb.SUPERSEDED, run_id=run.superseded_by)
        if run.lifecycle.archived:
            archived = _latest(events, {"run.archived"})
            return Outcome(OutcomeVerb.ARCHIVED, actor=principal(archived.actor) if archived else {})
    if key.kind is AlertKind.FAILED and run.bucket == "failed" and key.failure is not None:
        # Failed again since: only a resume in place takes a failed run back to work.
        return Outcome(OutcomeVerb.RESUMED)
    return Outcome(OutcomeVerb.MOVED_ON, state=run_state(run), subject=key.kind)
