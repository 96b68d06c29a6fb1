"""`/runs subscribe | subscriptions | unsubscribe`: which channels get which alerts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.asking.reply import Reply
from bot.blocks.presentation import Presentation
from bot.blocks.replies import notice
from bot.blocks.subscriptions import (
    muted_list_message,
    muted_message,
    subscribed_message,
    subscriptions_message,
    summary_message,
    unmuted_message,
    unsubscribed_message,
)
from bot.core.query import Subscribe, Summary, Unsubscribe
from bot.core.records import ChannelSummary, Mute, Subscription
from bot.people.identity import Linker
from bot.people.permissions import ActionClass, Permissions
from bot.store.base import Subscriptions

__all__ = ["SubscriptionDesk"]

log = logging.getLogger(__name__)

Message = dict[str, Any]

NOT_LINKED = (
    "`by:me` needs to know your GitHub login: link it first with `{command} link <login>`,"
    " or name the login: `by:<login>`."
)


@dataclass
class SubscriptionDesk:
    store: Subscriptions
    default_channel: str | None = None
    presentation: Presentation = field(default_factory=Presentation)
    # Who may change where alerts go: ALLOW_ROUTE (everyone when no permissions are given).
    permissions: Permissions | None = None
    linker: Linker | None = None  # for `by:me`

    async def _may_route(self, user_id: str, what: str = "change where alerts are posted") -> None:
        if self.permissions is not None:
            await self.permissions.check(ActionClass.ROUTE, user_id, what=what)

    async def subscribe(self, request: Subscribe, *, channel: str, user_id: str) -> Reply:
        await self._may_route(user_id)
        by = request.by
        if request.by_me:
            # `by:me` is the caller's logins as they are now: the channel's alerts must not change
            # when the caller links another login later.
            pinned, linked = await self.linker.logins_of(user_id) if self.linker else ([], [])
            if not pinned and not linked:
                return Reply(notice(NOT_LINKED.format(command=self.presentation.command), icon=":warning:"))
            by = tuple(dict.fromkeys((*by, *pinned, *linked)))
        wanted = Subscription(
            0,
            channel,
            request.kinds,
            repo=request.repo,
            workflow=request.workflow,
            labels=dict(request.labels),
            created_by=user_id,
            by=by,
            not_by=request.not_by,
            not_repos=request.not_repos,
            not_workflows=request.not_workflows,
        )
        for sub in await self.store.subscriptions(channel):
            if (sub.kinds, sub.narrow, sub.labels) == (wanted.kinds, wanted.narrow, wanted.labels):
                return Reply(subscribed_message(sub, user_id=user_id, command=self.presentation.command, existing=True))
        sub = await self.store.add_subscription(wanted)
        log.info("user=%s subscribed channel=%s: subscription %d", user_id, channel, sub.id)
        return Reply(
            subscribed_message(sub, user_id=user_id, command=self.presentation.command, existing=False), public=True
        )

    async def summary(self, request: Summary, *, channel: str, user_id: str, tz: str, now: datetime) -> Reply:
        """Show, set (replacing any earlier one) or stop the channel's daily summary."""
        if request.at is None and not request.off:
            current = next(iter(await self.store.summaries(channel)), None)
            return Reply(summary_message(current, command=self.presentation.command))
        await self._may_route(user_id)
        if request.off:
            removed = await self.store.remove_summary(channel)
            log.info("user=%s stopped the daily summary of channel=%s", user_id, channel)
            return Reply(summary_message(None, command=self.presentation.command, changed_by=user_id), public=removed)
        assert request.at is not None
        setting = ChannelSummary(channel, request.at, tz, user_id, now)
        await self.store.set_summary(setting)
        log.info("user=%s set the daily summary of channel=%s at %s %s", user_id, channel, request.at, tz)
        return Reply(summary_message(setting, command=self.presentation.command, changed_by=user_id), public=True)

    async def list(self, *, channel: str) -> Reply:
        subs = await self.store.subscriptions(channel)
        broken = (await self.store.broken_channels()).get(channel)
        return Reply(
            subscriptions_message(
                subs,
                channel=channel,
                default_channel=self.default_channel,
                broken=broken,
                command=self.presentation.command,
            )
        )

    async def unsubscribe(self, request: Unsubscribe, *, channel: str, user_id: str) -> Reply:
        await self._may_route(user_id)
        removed = await self.store.remove_subscriptions(channel, list(request.ids) if request.ids is not None else None)
        log.info("user=%s removed %d subscriptions from channel=%s", user_id, removed, channel)
        return Reply(
            unsubscribed_message(removed, ids=request.ids, user_id=user_id, command=self.presentation.command),
            public=removed > 0,
        )

    # -- mutes: one run, one conversation ---------------------------------------------------

    async def _may_mute(self, channel: str, user_id: str) -> None:
        # A direct message is the caller's own: muting there changes nothing anyone else sees.
        if not channel.startswith("D"):
            await self._may_route(user_id, "mute or unmute a run in a channel")

    async def mute(self, run_id: str, minutes: int | None, *, channel: str, user_id: str, now: datetime) -> Reply:
        """Mute `run_id` (a full id) in `channel` for `minutes`, or for the rest of the run (None)."""
        await self._may_mute(channel, user_id)
        until = now + timedelta(minutes=minutes) if minutes is not None else None
        mute = Mute(channel, run_id, until, user_id, now)
        await self.store.mute(mute)
        log.info("user=%s muted run %s in channel=%s until %s", user_id, run_id, channel, until or "it ends")
        return Reply(muted_message(mute, user_id=user_id, command=self.presentation.command), public=True)

    async def unmute(self, run_id: str, *, channel: str, user_id: str) -> Reply:
        await self._may_mute(channel, user_id)
        removed = await self.store.unmute(channel, run_id)
        log.info("user=%s unmuted run %s in channel=%s (%s)", user_id, run_id, channel, removed)
        return Reply(unmuted_message(run_id, user_id=user_id, removed=removed), public=removed)

    async def muted(self, *, channel: str, now: datetime) -> Reply:
        return Reply(
            muted_list_message(await self.store.mutes(now, channel=channel), command=self.presentation.command)
        )
