"""The durable keys and closed sets the bot stores and routes on: built and taken apart only here.  [pure]

    AlertKey   what a message the bot posts on its own is about: `failed:<run>:<failure>`,
               `question:<run>:<question>`, `approval:<run>`, `cancelled:<run>`, `succeeded:<run>`,
               `pr:<run>:<number>` (a pull request opened or linked for the run),
               `summary:<day>` (a channel's daily summary; its subject is the local date),
               `update:<run>:<seq>` and `reply:<run>:<what>.<intent>` (replies in a run's thread)
    ActionKey  what may happen only once: `answer:<run>:<question>`, `decide:<run>` (approve
               or deny), `retry:<run>:<failure>` (retried or resumed), `cancel:<run>`

Both are stored as text and come back from the database (and, for digests, from Slack's
message metadata), so `parse` returns None for anything malformed instead of raising.

A run resumed in place can fail again, so a failure is named by its run *and* by when it
ended: `<failure>` is Fabro's `completed_at` for that failure, to the millisecond, in UTC
(`20261201T102933.123Z`, see `failure_of`). Fabro clears it on a resume and sets it anew when
the run ends again, so every replica, every restart and every read of the same failure names
it alike, and a second failure is news. Keys written before failures were told apart
(`failed:<run>`, `retry:<run>`) still parse, with no failure named: they stand for the
failure the run was in when they were written, its first (`AlertKey.legacy_failure`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "CLOCK_SKEW",
    "SAME_INSTANT",
    "ActionKey",
    "ActionScope",
    "ActionState",
    "AlertKey",
    "AlertKind",
    "Verb",
    "ended_by",
    "failure_of",
    "names_a_failure",
]

_RUN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_QUESTION_ID = re.compile(r"\S{1,150}")
_FAILURE = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{3}Z")  # ASCII digits only: `\d` takes any script's


def names_a_failure(text: str | None) -> bool:
    """Whether `text` is a failure's name as `failure_of` writes it (it came back from Slack or the store)."""
    return bool(text) and _FAILURE.fullmatch(text or "") is not None


# How far the clocks of the bot and Fabro may disagree when a time of one is compared with the other's.
CLOCK_SKEW = timedelta(minutes=10)
# A creation time Fabro writes to the second may read as up to this much before a time to the millisecond.
SAME_INSTANT = timedelta(seconds=1)


def ended_by(failure: str, when: datetime) -> bool:
    """Whether the failure named `failure` had ended by `when`, a time of the bot's, give or take
    `CLOCK_SKEW`: a record the bot made then, before failures were told apart, was about it.
    Names are one format, in UTC, so the text sorts as the time does."""
    return failure <= (failure_of(when + CLOCK_SKEW) or "")


def failure_of(completed_at: datetime | None) -> str | None:
    """The name of a failure: when it ended (Fabro's `completed_at`), to the millisecond, in UTC.

    None when Fabro sent no time (or one that has no UTC date, at the very edge of the calendar):
    such a failure is keyed as before failures were told apart."""
    if completed_at is None:
        return None
    try:
        when = completed_at.astimezone(UTC) if completed_at.tzinfo else completed_at
    except OverflowError:
        return None
    # The year written whole: strftime's %Y drops the leading zeros of a year before 1000.
    return f"{when.year:04d}" + when.strftime("%m%dT%H%M%S") + f".{when.microsecond // 1000:03d}Z"


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
    run_id, colon, question_id = rest.partition(":")
    if kind not in kinds.__members__.values() or not _RUN_ID.fullmatch(run_id):
        return None
    if colon and not _QUESTION_ID.fullmatch(question_id):
        return None
    return kind, run_id, question_id or None


def _check_failure(failure: str | None, named: bool, what: str) -> None:
    if failure is not None and (not named or not _FAILURE.fullmatch(failure)):
        raise ValueError(f"only {what} names a failure, as `failure_of` writes it")


@dataclass(frozen=True)
class AlertKey:
    kind: AlertKind
    run_id: str
    question_id: str | None = None
    failure: str | None = None  # which failure of the run, for `failed` (None: a key from before, its first)

    def __post_init__(self) -> None:
        named = (AlertKind.QUESTION, AlertKind.UPDATE, AlertKind.PR, AlertKind.REPLY)
        if (self.kind in named) != (self.question_id is not None):
            raise ValueError("questions, thread updates, replies and pull requests, and only they, name their subject")
        _check_failure(self.failure, self.kind is AlertKind.FAILED, "a failed alert")

    @classmethod
    def failed(cls, run_id: str, completed_at: datetime | None) -> AlertKey:
        """The alert about the failure of `run_id` that ended at `completed_at`."""
        return cls(AlertKind.FAILED, run_id, failure=failure_of(completed_at))

    @property
    def legacy_failure(self) -> bool:
        """A failed alert stored before failures were told apart (`failed:<run>`): it stands for the
        failure the run was in when it was claimed, until the run is seen to move on."""
        return self.kind is AlertKind.FAILED and self.failure is None

    def stands_for(self, other: AlertKey) -> bool:
        """Whether this stored key is about what `other` is about: the same key, or a failed alert from
        before failures were told apart and a failure of the same run (the caller knows it is still current)."""
        if self == other:
            return True
        return self.legacy_failure and other.kind is AlertKind.FAILED and other.run_id == self.run_id

    def encode(self) -> str:
        subject = self.question_id or self.failure
        return f"{self.kind}:{self.run_id}" + (f":{subject}" if subject else "")

    def __str__(self) -> str:
        return self.encode()

    def __lt__(self, other: AlertKey) -> bool:
        return self.encode() < other.encode()

    @classmethod
    def parse(cls, text: str | None) -> AlertKey | None:
        parts = _split(text, AlertKind)
        if parts is None:
            return None
        kind, run_id, subject = parts
        try:
            if kind == AlertKind.FAILED:
                return cls(AlertKind.FAILED, run_id, failure=subject)
            return cls(AlertKind(kind), run_id, subject)
        except ValueError:
            return None


@dataclass(frozen=True)
class ActionKey:
    scope: ActionScope
    run_id: str
    question_id: str | None = None
    failure: str | None = None  # the failure a retry or resume takes up (None: a key from before, its first)

    def __post_init__(self) -> None:
        if (self.scope is ActionScope.ANSWER) != (self.question_id is not None):
            raise ValueError("an answer, and only an answer, names its question")
        _check_failure(self.failure, self.scope is ActionScope.RETRY, "a retry or resume")

    @classmethod
    def of(cls, verb: Verb, run_id: str, question_id: str | None = None, *, failure: str | None = None) -> ActionKey:
        """The once-only record of `verb` on `run_id`: an answer names its question; a retry or resume
        names the failure it takes up (each failure of a run resumed in place is taken up once)."""
        scope = _SCOPE_OF[verb]
        return cls(
            scope,
            run_id,
            question_id if scope is ActionScope.ANSWER else None,
            failure if scope is ActionScope.RETRY else None,
        )

    def encode(self) -> str:
        subject = self.question_id or self.failure
        return f"{self.scope}:{self.run_id}" + (f":{subject}" if subject else "")

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def parse(cls, text: str | None) -> ActionKey | None:
        parts = _split(text, ActionScope)
        if parts is None:
            return None
        scope, run_id, subject = parts
        try:
            if scope == ActionScope.RETRY:
                return cls(ActionScope.RETRY, run_id, failure=subject)
            return cls(ActionScope(scope), run_id, subject)
        except ValueError:
            return None

    @property
    def alert(self) -> AlertKey | None:
        """The alert this action settles: answer → its question, decide → the approval, retry → the failure."""
        kind = _ALERT_OF.get(self.scope)
        if kind is None:
            return None
        return AlertKey(kind, self.run_id, self.question_id, failure=self.failure)
