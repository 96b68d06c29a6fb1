"""The rows the store keeps, as types: alerts, subscriptions, follows, the runs index, links, summaries, actions.

An alert is claimed before it is posted and confirmed after, so a crash between the
two leaves a claim that a restart can resolve (by looking for the posted message)
instead of posting twice or losing the alert.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from bot.core.keys import ActionKey, ActionState, AlertKey, AlertKind, Verb
from bot.core.outcomes import Outcome
from bot.core.query import Narrow

__all__ = [
    "Action",
    "Alert",
    "AlertState",
    "Binding",
    "ChannelSetup",
    "ChannelSummary",
    "Follow",
    "IndexedRun",
    "Mute",
    "Subscription",
    "UserLink",
]


class AlertState(enum.StrEnum):
    CLAIMED = "claimed"  # decided and durably recorded; not yet known to be in Slack
    POSTED = "posted"  # in Slack, at (channel, ts)
    RESOLVED = "resolved"  # the message was updated to its final state


@dataclass(frozen=True)
class Alert:
    key: AlertKey  # what the alert is about
    channel: str
    state: AlertState
    ts: str | None = None
    claimed_at: datetime | None = None
    outcome: Outcome | None = None  # set before the message is edited; RESOLVED once it was
    batch: str | None = None  # the digest this alert was posted in
    attempts: int = 0  # failed deliveries so far
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    unposted: bool = False  # Slack refused the last post: it is certainly not there

    @property
    def run_id(self) -> str:
        return self.key.run_id

    @property
    def kind(self) -> AlertKind:
        return self.key.kind

    @property
    def update_pending(self) -> bool:
        return self.state is AlertState.POSTED and self.outcome is not None


@dataclass(frozen=True)
class Subscription:
    id: int
    channel: str
    kinds: frozenset[str]
    repo: str | None = None
    workflow: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_by: str | None = None
    broken: str | None = None  # why posting to the channel failed (not_in_channel…), until it works again
    by: tuple[str, ...] = ()  # creator logins (lower case), any of
    not_by: tuple[str, ...] = ()
    not_repos: tuple[str, ...] = ()
    not_workflows: tuple[str, ...] = ()
    caught_up: bool = True  # a new subscription is told, once, what already waits (the next cycle does it)

    @property
    def narrow(self) -> Narrow:
        """Who started a run and where it ran, as a listing would filter it."""
        return Narrow(
            by=self.by,
            not_by=self.not_by,
            repo=self.repo,
            not_repos=self.not_repos,
            workflow=self.workflow,
            not_workflows=self.not_workflows,
        )


@dataclass(frozen=True)
class Follow:
    """A run followed in a channel: its live card is the message `ts`, and `last_seq` the last event handled.

    A run started from a thread is followed in that thread (`thread_ts`): the card and its replies go
    there, and a mention there is about the run."""

    run_id: str
    channel: str
    ts: str
    created_by: str | None
    created_at: datetime
    last_seq: int = 0
    thread_ts: str | None = None
    ended_at: datetime | None = None  # the run ended: kept for a resume from Slack to follow it again

    @property
    def replies_to(self) -> str:
        """The thread the run's replies go to: the one it was started in, else its card's own."""
        return self.thread_ts or self.ts


@dataclass(frozen=True)
class IndexedRun:
    """What the bot remembers of a run it has seen, for Home: whose it is, and where it stands."""

    run_id: str
    owner: str | None  # a Slack user, when the bot's record or Fabro's `slack` principal says so
    login: str | None  # the GitHub login that started it (a link made later still finds it)
    status: str
    title: str
    web_url: str | None
    updated_at: datetime
    cost_micros: int | None = None  # what Fabro says it has cost so far, for the day's spend
    retried_as: str | None = None  # the newest run retried from it, once the bot has seen one


@dataclass(frozen=True)
class Mute:
    """A run muted in one conversation: no alerts, reminders or escalations about it there until `until`
    (None: for the rest of the run)."""

    channel: str
    run_id: str
    until: datetime | None
    created_by: str | None
    created_at: datetime

    def holds(self, now: datetime) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True)
class UserLink:
    """A Fabro login (GitHub's, lower case) that belongs to a Slack user."""

    login: str
    user_id: str
    created_at: datetime
    proof: str | None = None  # "github" when GitHub named the login; None when it was typed


@dataclass(frozen=True)
class ChannelSummary:
    """A channel's daily summary: posted every day at `at` (HH:MM) in the time zone `tz`."""

    channel: str
    at: str
    tz: str
    created_by: str | None
    created_at: datetime


@dataclass(frozen=True)
class ChannelSetup:
    """What a channel works on when someone starts work from it: a repository, a branch, a workflow."""

    channel: str
    repository: str  # owner/name on GitHub
    branch: str | None  # None: the repository's default branch
    workflow: str
    set_by: str
    set_at: datetime


@dataclass(frozen=True)
class Binding:
    """A window or confirmation the bot opened: for whom, for what, and until when it may be submitted."""

    nonce: str
    user_id: str
    what: str  # what it acts on, e.g. `merge:<run id>` or `start:<automation id>`
    until: datetime


@dataclass(frozen=True)
class Action:
    """Something a Slack user asked Fabro to do, recorded before it is sent."""

    key: ActionKey  # one per thing that can only happen once
    verb: Verb
    user_id: str
    requested_at: datetime
    state: ActionState = ActionState.PENDING
    detail: str | None = None  # what was asked (JSON), for the record
    note: str | None = None  # why it failed or was refused, for the record
    outcome: Outcome | None = None  # what it did, once done

    @property
    def run_id(self) -> str:
        return self.key.run_id
