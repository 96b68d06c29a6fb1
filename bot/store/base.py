"""The store interfaces: one narrow protocol per kind of state, and `Store`, all of them at once.

Each service takes the narrow protocol it needs (`AlertLog` for the outbox, `Follows` for following,
`People` for identity…), so what it can touch shows in its type; the SQL store (both backends)
satisfies every one. The records they keep are in `bot.core.records`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.core.keys import ActionKey, ActionState, AlertKey, Verb
from bot.core.outcomes import Outcome
from bot.core.records import (
    Action,
    Alert,
    Binding,
    ChannelSetup,
    ChannelSummary,
    Follow,
    IndexedRun,
    Mute,
    Subscription,
    UserLink,
)

__all__ = ["Actions", "AlertLog", "Bindings", "Follows", "Marks", "People", "Spending", "Store", "Subscriptions"]


class AlertLog(Protocol):
    """Every message the bot posts by itself: claimed, posted, edited to its outcome, settled."""

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


class Subscriptions(Protocol):
    """Channel subscriptions, runs muted in a conversation, the channels the bot cannot post to,
    channels' daily summaries and what each channel works on."""

    async def add_subscription(self, sub: Subscription) -> Subscription: ...
    async def subscriptions(self, channel: str | None = None) -> list[Subscription]: ...
    async def remove_subscriptions(self, channel: str, ids: list[int] | None) -> int: ...
    async def caught_up(self, sub_id: int) -> None:
        """The subscription has been told what was already waiting when it was made."""

    async def mark_broken(self, channel: str, reason: str | None) -> bool:
        """Set or clear why a channel cannot be posted to; True when that changed anything."""

    async def broken_channels(self) -> dict[str, str]: ...

    # runs muted in a conversation
    async def mute(self, mute: Mute) -> None:
        """Mute (or mute again, replacing how long) a run in a conversation."""

    async def unmute(self, channel: str, run_id: str) -> bool: ...
    async def mutes(self, now: datetime, *, channel: str | None = None, run_id: str | None = None) -> list[Mute]:
        """The mutes still holding at `now`."""
        ...

    async def set_summary(self, summary: ChannelSummary) -> None:
        """Set (or replace) the channel's summary."""

    async def remove_summary(self, channel: str) -> bool: ...
    async def summaries(self, channel: str | None = None) -> list[ChannelSummary]: ...

    # what channels work on
    async def set_setup(self, setup: ChannelSetup) -> None: ...
    async def setup_of(self, channel: str) -> ChannelSetup | None: ...
    async def remove_setup(self, channel: str) -> bool: ...


class Follows(Protocol):
    """Runs followed in channels: where their live card is, and how far their thread has been told."""

    async def add_follow(self, follow: Follow) -> bool:
        """Record the follow (in place of an ended one); False when the run is already followed in that channel."""

    async def follows(self, run_id: str | None = None) -> list[Follow]:
        """The follows going on (not the ended ones)."""
        ...

    async def follow_at(self, channel: str, ts: str) -> Follow | None: ...
    async def set_follow_seq(self, run_id: str, channel: str, seq: int) -> None: ...
    async def remove_follow(self, run_id: str, channel: str) -> bool:
        """Forget the follow, going on or ended: it is not followed again when the run is resumed."""
        ...

    async def end_follow(self, run_id: str, channel: str, at: datetime) -> bool:
        """The run ended: keep the follow, ended, where a resume can take it up again."""
        ...

    async def ended_follows(self, run_id: str) -> list[Follow]: ...
    async def reopen_follow(self, run_id: str, channel: str) -> bool:
        """Follow an ended follow again, from its card and seq; False when it is not ended (or gone)."""
        ...


class People(Protocol):
    """Who is who (linked logins), whose runs are whose (the run index), and what each wants to hear of."""

    async def add_link(self, link: UserLink) -> str:
        """Link the login unless someone holds it already; returns who holds it now."""
        ...

    async def links(self, *, user_id: str | None = None, login: str | None = None) -> list[UserLink]: ...
    async def remove_links(self, user_id: str, login: str | None = None) -> int: ...
    async def index_run(self, entry: IndexedRun) -> None: ...
    async def runs_of(
        self,
        owner: str,
        logins: list[str],
        limit: int,
        *,
        offset: int = 0,
        statuses: tuple[str, ...] | None = None,
        hidden: tuple[str, ...] = (),
        order: str = "updated_at",
        ascending: bool = False,
    ) -> list[IndexedRun]:
        """A person's runs by the owner rule (theirs by the bot's record, or by one of their logins)."""
        ...

    async def count_runs_of(
        self, owner: str, logins: list[str], *, statuses: tuple[str, ...] | None = None, hidden: tuple[str, ...] = ()
    ) -> int: ...
    async def indexed_run(self, run_id: str) -> IndexedRun | None: ...
    async def mark_retried(self, run_id: str, retry_id: str) -> bool:
        """Note on the indexed run `run_id` that `retry_id` was retried from it (the newest retry wins);
        False when the index does not hold the run, or holds a newer retry of it already."""
        ...

    async def set_notify(self, user_id: str, kinds: frozenset[str], now: datetime) -> None: ...
    async def notify_of(self, user_id: str) -> frozenset[str] | None:
        """The kinds of direct message a person chose; None: they never chose (the defaults apply)."""
        ...


class Spending(Protocol):
    """What runs cost, as the run index knows it: the day's spend against DAILY_BUDGET_USD."""

    async def spend_between(self, start: datetime, end: datetime) -> tuple[int, list[IndexedRun]]:
        """What the runs last changed in [start, end) have cost (micro-dollars), and the five costliest."""
        ...


class Marks(Protocol):
    """Named values the engine keeps between cycles (its watermarks)."""

    async def get_mark(self, name: str) -> str | None: ...
    async def set_mark(self, name: str, value: str) -> None: ...
    async def add_mark(self, name: str, value: str) -> bool:
        """Set the mark unless it exists; True when this call set it."""
        ...


class Actions(Protocol):
    """What people did from Slack: each action once, settled on every path."""

    async def begin_action(self, action: Action, *, stale_before: datetime) -> Action | None:
        """Record `action` as pending; when its key is taken, the earlier action instead.

        A failed or refused action may be tried again, and so may one left pending since
        before `stale_before` (its process died, or its database write failed).
        """

    async def finish_action(
        self, key: ActionKey, *, state: ActionState, note: str | None = None, outcome: Outcome | None = None
    ) -> None: ...
    async def actions_for_run(self, run_id: str) -> list[Action]: ...
    async def unsettled(self, verb: Verb, *, before: datetime) -> list[Action]:
        """Actions of `verb` still pending since before `before`: their process died mid-way."""
        ...


class Bindings(Protocol):
    """The windows and confirmations the bot opened, each for one person and one thing, for a while."""

    async def add_binding(self, binding: Binding) -> None: ...
    async def binding(self, nonce: str) -> Binding | None: ...


class Store(AlertLog, Subscriptions, Follows, People, Spending, Marks, Actions, Bindings, Protocol):
    """All of the store: what the composition root opens and retention prunes; the SQL store is one."""

    statements: int  # statements sent since the store opened

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self, now: datetime) -> None:
        """Raise unless the store takes a write now."""

    async def forget(self, before: datetime, *, batch: int) -> int:
        """Delete one batch of what ended before `before` and nothing still needs; returns the rows deleted."""
