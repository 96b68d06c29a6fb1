"""The durable keys and closed sets the bot stores and routes on: built and taken apart only here.  [pure]

    AlertKey   what a message the bot posts on its own is about: `failed:<run>`,
               `question:<run>:<question>`, `approval:<run>`, `cancelled:<run>`, `succeeded:<run>`,
               `pr:<run>:<number>` (a pull request opened or linked for the run),
               `summary:<day>` (a channel's daily summary; its subject is the local date),
               `update:<run>:<seq>` and `reply:<run>:<what>.<intent>` (replies in a run's thread)
    ActionKey  what may happen only once: `answer:<run>:<question>`, `decide:<run>` (approve
               or deny), `retry:<run>`, `cancel:<run>`

Both are stored as text and come back from the database (and, for digests, from Slack's
message metadata), so `parse` returns None for anything malformed instead of raising.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = [
    "ActionKey",
    "ActionScope",
    "ActionState",
    "AlertKey",
    "AlertKind",
    "Verb",
]

_RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_QUESTION_ID = re.compile(r"^\S{1,150}$")


class AlertKind(enum.StrEnum):
    FAILED = "failed"
    QUESTION = "question"
    APPROVAL = "approval"
    CANCELLED = "cancelled"
    SUCCEEDED = "succeeded"  # asked for by name: `/runs subscribe succeeded`, `/runs notify succeeded`
    COST = "cost"  # a run whose cost crossed COST_ALERT_USD, asked for by name
    PR = "pr"  # a pull request opened (or linked) for a run: `pr:<run>:<number>`, asked for by name
    BUDGET = "budget"  # the day's spend crossed DAILY_BUDGET_USD: `budget:<local day>`, once per channel
    SUMMARY = "summary"  # a channel's daily summary: its key names the local day (`summary:2026-11-28`)
    # Messages their sender renders on the spot and posts through the outbox at once: a reply in a
    # followed run's thread (`update:<run>:<seq>`), a reminder or escalation
    # (`update:<run>:remind-<question>`), a started run's announcement (`update:<run>:started`)…
    UPDATE = "update"
    # …and what a person asked for in a run's thread (`reply:<run>:<what>.<intent>`).
    REPLY = "reply"

    @property
    def posted_by_sender(self) -> bool:
        """True for messages their sender posts (and retries) itself; the others are the engine's
        alerts about a run's state and the daily summaries, which the delivery pass renders."""
        return self in (AlertKind.UPDATE, AlertKind.REPLY)


class Verb(enum.StrEnum):
    """Everything a person can do to a run from Slack."""

    ANSWER = "answer"
    APPROVE = "approve"
    DENY = "deny"
    RETRY = "retry"
    CANCEL = "cancel"
    CREATE_PR = "create_pr"
    MERGE_PR = "merge_pr"
    CLOSE_PR = "close_pr"
    START = "start"
    STEER = "steer"
    INTERRUPT = "interrupt"
    PAUSE = "pause"
    RESUME = "resume"  # unpause a paused run
    RESUME_RUN = "resume_run"  # run a failed run again in place, from its last checkpoint
    ASK = "ask"  # a question for Fabro about a run, in its thread


class ActionState(enum.StrEnum):
    PENDING = "pending"  # recorded, being sent: nobody else may do the same thing now
    DONE = "done"  # Fabro did it
    FAILED = "failed"  # Fabro refused or could not be reached: may be tried again
    REFUSED = "refused"  # the run had moved on before it was sent: may be tried again


class ActionScope(enum.StrEnum):
    """What an action uses up: approve and deny share one decision."""

    ANSWER = "answer"
    DECIDE = "decide"
    RETRY = "retry"
    CANCEL = "cancel"
    CREATE_PR = "create_pr"  # a run's pull request is created once
    SHIP_PR = "ship_pr"  # and then merged or closed once
    START = "start"  # one start per confirmation (its key names the intent, not a run)
    STEER = "steer"  # one delivery per message or window (keyed by the intent too)
    CONTROL = "control"  # interrupt, pause, resume: one per click (Fabro refuses a second pending one)
    ASK = "ask"  # one answer per question asked in a thread (keyed by the intent), settled even after a crash


_SCOPE_OF = {
    Verb.ANSWER: ActionScope.ANSWER,
    Verb.APPROVE: ActionScope.DECIDE,
    Verb.DENY: ActionScope.DECIDE,
    Verb.RETRY: ActionScope.RETRY,
    Verb.RESUME_RUN: ActionScope.RETRY,  # a failure is taken up once: retried or resumed, not both
    Verb.CANCEL: ActionScope.CANCEL,
    Verb.CREATE_PR: ActionScope.CREATE_PR,
    Verb.MERGE_PR: ActionScope.SHIP_PR,
    Verb.CLOSE_PR: ActionScope.SHIP_PR,
    Verb.START: ActionScope.START,
    Verb.STEER: ActionScope.STEER,
    Verb.INTERRUPT: ActionScope.CONTROL,
    Verb.PAUSE: ActionScope.CONTROL,
    Verb.RESUME: ActionScope.CONTROL,
    Verb.ASK: ActionScope.ASK,
}
# The alert an action settles once it is done (cancelling settles no alert of its own).
_ALERT_OF = {
    ActionScope.ANSWER: AlertKind.QUESTION,
    ActionScope.DECIDE: AlertKind.APPROVAL,
    ActionScope.RETRY: AlertKind.FAILED,
}


def _split(text: str | None, kinds: type[enum.StrEnum]) -> tuple[str, str, str | None] | None:
    if not text:
        return None
    kind, _, rest = text.partition(":")
    run_id, _, question_id = rest.partition(":")
    if kind not in kinds.__members__.values() or not _RUN_ID.match(run_id):
        return None
    if question_id and not _QUESTION_ID.match(question_id):
        return None
    return kind, run_id, question_id or None


@dataclass(frozen=True, order=True)
class AlertKey:
    kind: AlertKind
    run_id: str
    question_id: str | None = None

    def __post_init__(self) -> None:
        named = (AlertKind.QUESTION, AlertKind.UPDATE, AlertKind.PR, AlertKind.REPLY)
        if (self.kind in named) != (self.question_id is not None):
            raise ValueError("questions, thread updates, replies and pull requests, and only they, name their subject")

    def encode(self) -> str:
        return f"{self.kind}:{self.run_id}" + (f":{self.question_id}" if self.question_id else "")

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def parse(cls, text: str | None) -> AlertKey | None:
        parts = _split(text, AlertKind)
        if parts is None:
            return None
        kind, run_id, question_id = parts
        try:
            return cls(AlertKind(kind), run_id, question_id)
        except ValueError:
            return None


@dataclass(frozen=True)
class ActionKey:
    scope: ActionScope
    run_id: str
    question_id: str | None = None

    def __post_init__(self) -> None:
        if (self.scope is ActionScope.ANSWER) != (self.question_id is not None):
            raise ValueError("an answer, and only an answer, names its question")

    @classmethod
    def of(cls, verb: Verb, run_id: str, question_id: str | None = None) -> ActionKey:
        scope = _SCOPE_OF[verb]
        return cls(scope, run_id, question_id if scope is ActionScope.ANSWER else None)

    def encode(self) -> str:
        return f"{self.scope}:{self.run_id}" + (f":{self.question_id}" if self.question_id else "")

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def parse(cls, text: str | None) -> ActionKey | None:
        parts = _split(text, ActionScope)
        if parts is None:
            return None
        scope, run_id, question_id = parts
        try:
            return cls(ActionScope(scope), run_id, question_id)
        except ValueError:
            return None

    @property
    def alert(self) -> AlertKey | None:
        """The alert this action settles: answer → its question, decide → the approval, retry → the failure."""
        kind = _ALERT_OF.get(self.scope)
        return AlertKey(kind, self.run_id, self.question_id) if kind is not None else None
