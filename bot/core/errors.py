"""Why something a person asked for was not done, as typed errors the services raise.  [pure]

    BotError                 a request that could not be done; rendered by `bot.blocks.replies`
    ├── NotAllowed           the person is not in the allowlist for that
    ├── AlreadyActed         someone already did it, or is doing it now
    ├── Refused              the run moved on: the thing no longer applies (the card is redrawn)
    ├── ActionFailed         Fabro refused or could not be reached while acting (wraps a FabroError)
    ├── Unreadable           a button, menu or modal whose data cannot be read (stale or forged)
    ├── NotOpened            Slack would not open a window in time (the click's trigger expired)
    ├── CannotPost           the bot cannot post where a live card was asked for
    ├── FollowLimit          FOLLOW_MAX runs are followed already
    ├── NothingToShow        Fabro has none of what was asked to be shown (a run without a log)
    └── NotPosted            Slack would not take what was asked to be shown in a thread

Fabro's own errors (`bot.fabro.errors.FabroError`) reach the same boundary unwrapped when
nothing was being acted on (a listing, a lookup). Anything else is a bug: the boundary logs
it with its traceback and a reference the person also sees.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bot.core.keys import Verb
from bot.core.outcomes import Outcome
from bot.core.records import Action
from bot.fabro.errors import FabroError
from bot.fabro.models import Run

__all__ = [
    "ActionFailed",
    "AlreadyActed",
    "BotError",
    "CannotPost",
    "FollowLimit",
    "NotAllowed",
    "NotOpened",
    "NotPosted",
    "NothingToShow",
    "Refusal",
    "Refused",
    "Settled",
    "Unreadable",
]


@dataclass(frozen=True)
class Settled:
    """Where a run is after an action, and what became of the thing acted on: a card's new state."""

    run: Run
    outcome: Outcome


class BotError(Exception):
    """A request that could not be done. `status` labels it in /metrics."""

    status = "failed"
    settled: Settled | None = None  # what the card acted on should now show, when that is known


class NotAllowed(BotError):
    status = "not_allowed"

    def __init__(self, what: Verb | str, allowlist: str = "ACTION_ALLOWLIST", *, who: str | None = None) -> None:
        super().__init__(f"not allowed to {what}")
        self.what = what
        self.allowlist = allowlist  # the setting that decides
        self.who = who  # who may, in words (None: whoever that setting names)


class AlreadyActed(BotError):
    status = "duplicate"

    def __init__(self, earlier: Action) -> None:
        super().__init__(f"{earlier.key} is {earlier.state}")
        self.earlier = earlier


class Refusal(enum.StrEnum):
    QUESTION_GONE = "question_gone"
    ANSWER_UNFIT = "answer_unfit"  # the answer does not fit the question as it is now; `detail` says why
    NOTHING_PICKED = "nothing_picked"
    NOT_AWAITING_APPROVAL = "not_awaiting_approval"
    ARCHIVED = "archived"
    NOT_FINISHED = "not_finished"
    ALREADY_RETRIED = "already_retried"  # `detail` names the retry
    ALREADY_FINISHED = "already_finished"
    NOT_SUCCEEDED = "not_succeeded"
    PR_EXISTS = "pr_exists"
    PR_NONE = "pr_none"
    PR_MERGED = "pr_merged"
    PR_CLOSED = "pr_closed"
    AUTOMATION_GONE = "automation_gone"
    NOT_RUNNING = "not_running"
    ENDED = "ended"
    TOO_LONG = "too_long"
    NOTHING_SAID = "nothing_said"
    NOT_STARTABLE = "not_startable"
    NO_GOAL = "no_goal"  # work asked for with nothing to do
    NOT_SET_UP = "not_set_up"  # the channel has no repository to work on
    REPO_NOT_ALLOWED = "repo_not_allowed"  # `detail` is the repository, not in REPOSITORIES
    WORKFLOW_INVALID = "workflow_invalid"  # `detail` says why (the validator's reasons)
    NOT_STARTED = "not_started"  # created, but Fabro would not start it; `detail` says why
    NOT_RESUMABLE = "not_resumable"  # only a failed run goes back to work
    NO_CHECKPOINT = "no_checkpoint"
    ENGINE_RUNNING = "engine_running"  # its engine process has not exited yet
    EARLIER_FAILURE = "earlier_failure"  # the card is about a failure the run was resumed from since
    PR_DRAFT = "pr_draft"  # GitHub merges only ready pull requests; `detail` is its link
    PR_NOT_MERGEABLE = "pr_not_mergeable"  # GitHub refused; `detail` says what Fabro and GitHub said


class Refused(BotError):
    status = "refused"

    def __init__(
        self, reason: Refusal, *, run: Run | None = None, detail: str | None = None, settled: Settled | None = None
    ) -> None:
        super().__init__(str(reason))
        self.reason = reason
        self.run = run
        self.detail = detail
        self.settled = settled
        if reason is Refusal.NOTHING_PICKED:
            self.status = "invalid"


class ActionFailed(BotError):
    def __init__(self, cause: FabroError, *, verb: Verb, run_id: str, settled: Settled | None = None) -> None:
        super().__init__(f"{verb} {run_id}: {cause!r}")
        self.cause = cause
        self.verb = verb
        self.run_id = run_id
        self.settled = settled


class Unreadable(BotError):
    status = "invalid"

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class NotOpened(BotError):
    def __init__(self, why: str) -> None:
        super().__init__(why)


class CannotPost(BotError):
    """The bot cannot post in that conversation (a private channel it is not in, a DM between people)."""

    def __init__(self, channel: str, error: str) -> None:
        super().__init__(f"{channel}: {error}")
        self.channel = channel
        self.error = error


class FollowLimit(BotError):
    """`FOLLOW_MAX` runs are followed already."""

    def __init__(self, limit: int, *, per_person: int | None = None) -> None:
        super().__init__(f"{per_person or limit} runs are followed")
        self.limit = limit  # per channel
        self.per_person = per_person  # set when it is the person's own share that is full


class NothingToShow(BotError):
    """Fabro has none of what was asked to be shown: `said` tells what, in a sentence."""

    status = "not_found"

    def __init__(self, said: str) -> None:
        super().__init__(said)
        self.said = said


class NotPosted(BotError):
    """Slack refused what was asked to be shown in a run's thread (`error` is Slack's code)."""

    status = "slack_error"

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error
