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

__all__ = ["Alert", "AlertState", "Store", "Subscription"]


class AlertState(enum.StrEnum):
    CLAIMED = "claimed"      # decided and durably recorded; not yet known to be in Slack
    POSTED = "posted"        # in Slack, at (channel, ts)
    RESOLVED = "resolved"    # the message was updated to its final state
    SEEN = "seen"            # recorded without posting (history on first start)


@dataclass(frozen=True)
class Alert:
    key: str                 # what the alert is about, e.g. "failed:01KJ…", "question:01KJ…:q-1"
    channel: str
    run_id: str
    kind: str                # failed | question | approval
    state: AlertState
    ts: str | None = None
    claimed_at: datetime | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class Subscription:
    id: int
    channel: str
    kinds: frozenset[str]
    repo: str | None = None
    workflow: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_by: str | None = None
    broken: str | None = None     # why posting failed (not_in_channel…), until it works again


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # alerts
    async def claim_alert(self, key: str, channel: str, run_id: str, kind: str, now: datetime) -> bool:
        """Record the intent to post; False when this (key, channel) was claimed before."""
    async def mark_seen(self, key: str, channel: str, run_id: str, kind: str, now: datetime) -> bool: ...
    async def confirm_posted(self, key: str, channel: str, ts: str, now: datetime) -> None: ...
    async def release_claim(self, key: str, channel: str) -> None: ...
    async def resolve_alert(self, key: str, channel: str, outcome: str, now: datetime) -> None: ...
    async def alerts_in_state(self, state: AlertState) -> list[Alert]: ...
    async def alerts_for_run(self, run_id: str) -> list[Alert]: ...

    # subscriptions
    async def add_subscription(self, sub: Subscription) -> Subscription: ...
    async def subscriptions(self, channel: str | None = None) -> list[Subscription]: ...
    async def remove_subscriptions(self, channel: str, ids: list[int] | None) -> int: ...
    async def mark_broken(self, channel: str, reason: str | None) -> None: ...

    # watermarks
    async def get_mark(self, name: str) -> str | None: ...
    async def set_mark(self, name: str, value: str) -> None: ...
