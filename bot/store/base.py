"""The store interface every backend satisfies, and the records it keeps.

An alert is claimed before it is posted and confirmed after, so a crash between the
two leaves a claim that a restart can resolve (by looking for the posted message)
instead of posting twice or losing the alert.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.keys import ActionKey, ActionState, AlertKey, AlertKind, Verb
from bot.outcomes import Outcome

__all__ = [
    "Action",
    "Alert",
    "AlertState",
    "ChannelSummary",
    "Follow",
    "IndexedRun",
    "Store",
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


@dataclass(frozen=True)
class Follow:
    """A run followed in a channel: its live card is the message `ts`, and `last_seq` the last event handled."""

    run_id: str
    channel: str
    ts: str
    created_by: str | None
    created_at: datetime
    last_seq: int = 0


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


@dataclass(frozen=True)
class UserLink:
    """A Fabro login (GitHub's, lower case) that belongs to a Slack user."""

    login: str
    user_id: str
    created_at: datetime


@dataclass(frozen=True)
class ChannelSummary:
    """A channel's daily summary: posted every day at `at` (HH:MM) in the time zone `tz`."""

    channel: str
    at: str
    tz: str
    created_by: str | None
    created_at: datetime


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


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self, now: datetime) -> None:
        """Raise unless the store takes a write now."""

    # alerts
    async def claim_alert(
        self,
        key: AlertKey,
        channel: str,
        now: datetime,
        *,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> bool:
        """Record the intent to post; False when this (key, channel) was claimed before."""

    async def take_over(self, key: AlertKey, channel: str, *, owner: str, now: datetime, until: datetime) -> bool:
        """Lease the delivery of an alert: True when it is ours, unowned, or its lease expired."""

    async def assign_batch(self, keys: list[AlertKey], channel: str, batch: str) -> None: ...
    async def confirm_posted(self, key: AlertKey, channel: str, ts: str, now: datetime) -> None: ...
    async def delivery_failed(
        self, key: AlertKey, channel: str, *, error: str, unposted: bool, retry_at: datetime
    ) -> None: ...
    async def set_outcome(self, key: AlertKey, channel: str, outcome: Outcome) -> None: ...
    async def resolve_alert(self, key: AlertKey, channel: str, outcome: Outcome, now: datetime) -> None: ...
    async def deliveries_due(self, now: datetime) -> list[Alert]:
        """Claimed alerts and posted ones with an outcome to edit in, whose next attempt is due."""

    async def alerts_for_run(self, run_id: str) -> list[Alert]: ...
    async def alerts_at(self, channel: str, ts: str) -> list[Alert]: ...
    async def waiting_alerts(self) -> list[Alert]:
        """Questions and approvals in Slack still waiting for someone."""
        ...

    # subscriptions and the channels they post to
    async def add_subscription(self, sub: Subscription) -> Subscription: ...
    async def subscriptions(self, channel: str | None = None) -> list[Subscription]: ...
    async def remove_subscriptions(self, channel: str, ids: list[int] | None) -> int: ...
    async def mark_broken(self, channel: str, reason: str | None) -> bool:
        """Set or clear why a channel cannot be posted to; True when that changed anything."""

    async def broken_channels(self) -> dict[str, str]: ...

    # runs followed in channels
    async def add_follow(self, follow: Follow) -> bool:
        """Record the follow; False when the run is already followed in that channel."""

    async def follows(self, run_id: str | None = None) -> list[Follow]: ...
    async def follow_at(self, channel: str, ts: str) -> Follow | None: ...
    async def set_follow_seq(self, run_id: str, channel: str, seq: int) -> None: ...
    async def remove_follow(self, run_id: str, channel: str) -> bool: ...

    # daily summaries, one per channel
    async def add_link(self, link: UserLink) -> str:
        """Link the login unless someone holds it already; returns who holds it now."""
        ...

    async def links(self, *, user_id: str | None = None, login: str | None = None) -> list[UserLink]: ...
    async def remove_links(self, user_id: str, login: str | None = None) -> int: ...
    async def index_run(self, entry: IndexedRun) -> None: ...
    async def runs_of(self, owner: str, logins: list[str], limit: int) -> list[IndexedRun]: ...
    async def indexed_run(self, run_id: str) -> IndexedRun | None: ...
    async def set_notify(self, user_id: str, kinds: frozenset[str], now: datetime) -> None: ...
    async def notify_of(self, user_id: str) -> frozenset[str] | None:
        """The kinds of direct message a person chose; None: they never chose (the defaults apply)."""
        ...

    async def set_summary(self, summary: ChannelSummary) -> None:
        """Set (or replace) the channel's summary."""

    async def remove_summary(self, channel: str) -> bool: ...
    async def summaries(self, channel: str | None = None) -> list[ChannelSummary]: ...

    # watermarks
    async def get_mark(self, name: str) -> str | None: ...
    async def set_mark(self, name: str, value: str) -> None: ...

    # actions taken from Slack
    async def begin_action(self, action: Action, *, stale_before: datetime) -> Action | None:
        """Record `action` as pending; when its key is taken, the earlier action instead.

        A failed or refused action may be tried again, and so may one left pending since
        before `stale_before` (its process died, or its database write failed).
        """

    async def finish_action(
        self, key: ActionKey, *, state: ActionState, note: str | None = None, outcome: Outcome | None = None
    ) -> None: ...
    async def actions_for_run(self, run_id: str) -> list[Action]: ...
